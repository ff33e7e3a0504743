"""The dashboard's pages, one per file (Dash loads them itself: see ``dashboards.app``).

``runs`` (/), ``run`` (/run/<run_id>), ``compare`` (/compare?runs=...), ``sweep``
(/sweep/<name>), ``not_found_404``; ``_common`` holds what they share. Component ids start with
the page's name. Files here are executed by Dash as modules ``pages.<name>``: import shared code
from ``dashboards.pages._common``, never one page from another.
"""
