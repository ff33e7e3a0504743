"""gradlab.store: the run store — one folder per run, metrics in Parquet, read with DuckDB.

Layout (hive-style folder names, so ``run_id`` comes from the path)::

    <root>/runs/.changed                        change token, replaced by every write
    <root>/runs/run_id=<id>/run.json            config, seed, versions, git commit, status, timings
                           /metrics.parquet     long table, METRICS_SCHEMA, one for all runs
                           /metrics-<a>-<b>.parquet   rows of flushes a..b, until finish compacts
                           /arrays/<name>/step=<step>.npy
                           /.lock               flock-ed (filelock) by the live writer

Statuses: ``running`` → ``complete`` | ``failed`` | ``diverged``; readers add ``interrupted``
(run.json says ``running`` but no live process holds the run's lock) and ``corrupt``
(run.json unreadable or with a malformed field, metrics damaged or of another schema, a broken
symbolic-link run folder) and an ``alive`` flag (a writer holds the run's lock now). run.json is
written last, so a run is never ``complete`` before all its files are in place; every file is
written to a temp name and os.replace-d.

Writer: ``store.create_run(run_id, config)`` → :class:`RunWriter` (``log_metrics``,
``save_array``, ``flush``, ``finish``; a context manager). Readers: ``store.runs()``,
``store.metrics(...)``, ``store.query(sql)`` (views ``metrics`` and ``runs``),
``store.run(id)`` → :class:`RunInfo` (config, summary, metrics, ``array_names``,
``array_steps``, ``array``). For caches: ``store.signature()`` changes whenever anything in the
store may have changed, ``store.run_signature(id)`` whenever that run's files did.
Ids: :func:`run_id_for` (content hash of the config); ``store.resolve_id(prefix)`` → the one
run id a prefix starts (AmbiguousRunIdError lists the candidates). Tags and a note per run:
``store.annotate(id, add_tags=..., note=...)``, ``store.annotations()`` (one file for the
store, changed under a file lock; ``runs/.annotations.json``).
Only JSON, Parquet and .npy (``allow_pickle=False``) are ever read. ``store.query`` is
read-only: one SELECT statement (else ReadOnlyQueryError), on a DuckDB connection that can open
the runs' metrics files and nothing else.
"""

from .annotations import Annotation
from .errors import AmbiguousRunIdError, ReadOnlyQueryError, RunExistsError
from .ids import run_id_for, validate_id
from .info import RunInfo
from .schema import METRICS_SCHEMA, STATUSES, empty_metrics_frame
from .sql import metrics_frame
from .store import Store, is_store, open_store
from .writer import RunWriter

__all__ = [
    "METRICS_SCHEMA",
    "STATUSES",
    "AmbiguousRunIdError",
    "Annotation",
    "ReadOnlyQueryError",
    "RunExistsError",
    "RunInfo",
    "RunWriter",
    "Store",
    "empty_metrics_frame",
    "is_store",
    "metrics_frame",
    "open_store",
    "run_id_for",
    "validate_id",
]
