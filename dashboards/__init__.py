"""gradlab's dashboard: a Dash app over one run store.

``dashboards.app.serve(store_path)`` runs it; ``dashboards.app.create_app(store_path)`` builds it
(for tests and WSGI servers). Layout: ``app.py`` is the shell (navbar, page container),
``pages/`` holds one page per file with its own callbacks, ``data.py`` is the one module that
reads the store (and caches what it reads). Figures come from ``gradlab.figures``.
"""
