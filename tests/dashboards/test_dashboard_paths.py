"""No page shows an absolute filesystem path (issue 15): not the store folder, not the files that
DuckDB, pyarrow or a traceback name. Pages are built over a REAL damaged store: a failed run
(a real traceback), a truncated metrics file, a valid Parquet file of the wrong schema and a run
folder symlinked in from another store. Every layout and figure callback of every page is
rendered to JSON and searched for the folders the server keeps its files in.
"""

from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from plotly.utils import PlotlyJSONEncoder

import gradlab
from dashboards import data

pytestmark = pytest.mark.filterwarnings(
    "ignore::DeprecationWarning:dash.development.base_component"
)

SWEEP = "damaged"
BASE = dict(
    task="adding",
    seq_len=5,
    hidden_size=4,
    steps=3,
    record_every=3,
    batch_size=8,
    probe_batch=4,
    hidden_samples=2,
    jacobian_samples=1,
    sweep=SWEEP,
)


def _parquet_files(folder: Path) -> list[Path]:
    files = sorted(folder.rglob("*.parquet"))
    assert files, folder
    return files


@pytest.fixture(scope="module")
def damaged(tmp_path_factory) -> types.SimpleNamespace:
    """root (str), ids: kind -> run id, private: the folders no page may name."""
    from gradlab.store import open_store
    from gradlab.train import train

    tmp = tmp_path_factory.mktemp("paths")
    root, elsewhere = tmp / "store", tmp / "elsewhere"
    ids = {
        kind: train({**BASE, "seed": seed}, root)
        for seed, kind in enumerate(("good", "truncated", "wrong_schema"))
    }
    from failing_activation import MESSAGE  # registers the activation "failing", which raises

    with pytest.raises(RuntimeError, match=MESSAGE):
        train({**BASE, "seed": 3, "activation": "failing"}, root)
    store = open_store(root)
    ids["failed"] = next(r for r in store.run_ids() if r not in ids.values())
    for path in _parquet_files(store.run(ids["truncated"]).path):
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    for path in _parquet_files(store.run(ids["wrong_schema"]).path):
        pq.write_table(pa.table({"x": [1.0, 2.0]}), path)
    ids["linked"] = train({**BASE, "seed": 4}, elsewhere)
    target = open_store(elsewhere).run(ids["linked"]).path
    os.symlink(target, store.run(ids["good"]).path.parent / target.name)
    repo = Path(gradlab.__file__).resolve().parent.parent
    private = {str(tmp), os.path.realpath(tmp), str(repo), sys.prefix, sys.base_prefix}
    return types.SimpleNamespace(root=str(root), ids=ids, private=private)


@pytest.fixture(scope="module")
def pages(damaged):
    """The page modules of an app over the damaged store, inside one of its requests."""
    from dashboards.app import create_app, page_module

    app = create_app(damaged.root)
    with app.server.test_request_context("/"):
        yield types.SimpleNamespace(
            **{n: page_module(n) for n in ("runs", "run", "compare", "sweep")}
        )


def rendered(*things) -> str:
    return json.dumps(things, cls=PlotlyJSONEncoder)


def assert_private(blob: str, damaged) -> None:
    for folder in damaged.private:
        assert folder not in blob, folder


@pytest.mark.parametrize("kind", ["failed", "truncated", "wrong_schema", "linked", "good"])
def test_run_page_and_its_figures_name_no_absolute_path(kind, damaged, pages):
    run_id = damaged.ids[kind]
    page = pages.run
    values = {"step": 3, "quantity": "grad_hidden", "scale": "log", "layer": "0:0"}
    figures = [page.figure(damaged.root, spec.name, run_id, values) for spec in page.SPECS]
    blob = rendered(page.layout(run_id=run_id), *figures)
    assert_private(blob, damaged)
    if kind == "failed":  # the traceback is shown, its files named from the code's folder
        assert "gradlab/train.py" in blob and "raised on purpose" in blob


def test_runs_compare_and_sweep_pages_name_no_absolute_path(damaged, pages):
    ids = list(damaged.ids.values())
    runs = pages.runs.layout()
    blob = rendered(runs)
    assert f"{len(ids)} runs" in blob and "in store/" in blob  # the folder's name, not its path
    compare = pages.compare
    compare_figures = [
        compare.figure(damaged.root, spec.name, ids, {"step": "3", "quantity": "grad_hidden"})
        for spec in compare.SPECS
    ]
    sweep = pages.sweep
    sweep_figure = sweep.figure(
        damaged.root, SWEEP, {"x": "seed", "y": "device", "color": "decay_rate"}
    )
    blob = rendered(
        runs,
        compare.layout(runs=",".join(ids)),
        *compare_figures,
        sweep.layout(name=SWEEP),
        sweep_figure,
    )
    assert_private(blob, damaged)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ('access "{root}/runs/x/metrics.parquet"', 'access "runs/x/metrics.parquet"'),
        ("no run store at '{root}'", "no run store at 'store'"),
        ("(['{root}/a.parquet', '/srv/other/b.parquet'])", "(['a.parquet', '…/b.parquet'])"),
        ('File "{code}/gradlab/train.py", line 3', 'File "gradlab/train.py", line 3'),
        ("{root}2/x and /home/me/notes.txt", "…/x and …/notes.txt"),
        ("see http://127.0.0.1:8050/run/abc", "see http://127.0.0.1:8050/run/abc"),
        ("(T+1)/2 steps/s a / b runs/x …/y", "(T+1)/2 steps/s a / b runs/x …/y"),
    ],
    ids=["store-file", "store-itself", "store-and-elsewhere", "code", "others", "url", "kept"],
)
def test_public_text(text, shown, tmp_path):
    root = tmp_path / "store"
    code = str(Path(gradlab.__file__).resolve().parent.parent)
    filled = text.format(root=root, code=code)
    assert data.public_text(filled, str(root)) == shown
    assert data.public_text(shown, str(root)) == shown  # already public: unchanged
