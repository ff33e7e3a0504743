"""The dashboard keeps working when one run is damaged (issue 15's reproducers, no browser).

A copy of the session store gets a run.json whose ``writer`` is a string, a valid Parquet
metrics file of the wrong schema, a run folder replaced by a symbolic link to the same run in
the original store, and a broken link. Every page is built as a plain function: the damaged runs
are listed as corrupt, their pages say so without an absolute path, and every other run's page,
the sweep page and the compare page draw as before.
"""

from __future__ import annotations

import json
import os
import shutil
import types
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dash import dcc

from dashboards import data
from dashboards.app import create_app, page_module

pytestmark = pytest.mark.filterwarnings(
    "ignore::DeprecationWarning:dash.development.base_component"
)


def walk(component: Any):
    if isinstance(component, list | tuple):
        for c in component:
            yield from walk(c)
        return
    if component is None or isinstance(component, str | int | float):
        return
    yield component
    yield from walk(getattr(component, "children", None))


def text(layout: Any) -> str:
    parts = []
    for c in walk(layout):
        kids = getattr(c, "children", None)
        parts += [k for k in (kids if isinstance(kids, list) else [kids]) if isinstance(k, str)]
    return " ".join(parts)


def graphs(layout: Any) -> int:
    return sum(isinstance(c, dcc.Graph) for c in walk(layout))


@pytest.fixture(scope="module")
def damaged(real_store, tmp_path_factory) -> types.SimpleNamespace:
    """(app, pages, root, bad: name → run id, good: run ids, linked) over a damaged copy."""
    root = tmp_path_factory.mktemp("damaged") / "store"
    shutil.copytree(real_store.root, root, symlinks=True)
    runs = root / "runs"
    ids = real_store.ids
    writer_str = ids[("rnn", 0.9)]
    meta_path = runs / f"run_id={writer_str}" / "run.json"
    meta = json.loads(meta_path.read_text())
    meta["writer"] = "pid 1"
    meta_path.write_text(json.dumps(meta))
    wrong_schema = ids[("lstm", 0.9)]
    pq.write_table(pa.table({"x": [1, 2, 3]}), runs / f"run_id={wrong_schema}" / "metrics.parquet")
    linked = ids[("gru", 1.5)]
    shutil.rmtree(runs / f"run_id={linked}")
    os.symlink(Path(real_store.root) / "runs" / f"run_id={linked}", runs / f"run_id={linked}")
    os.symlink(root / "nowhere", runs / "run_id=broken-link")
    bad = {"writer": writer_str, "schema": wrong_schema, "link": "broken-link"}
    good = [i for i in ids.values() if i not in bad.values()]
    app = create_app(str(root))  # registers the pages
    pages = types.SimpleNamespace(
        **{n: page_module(n) for n in ("runs", "run", "compare", "sweep")}
    )
    return types.SimpleNamespace(app=app, pages=pages, root=str(root), bad=bad,
                                 good=good, linked=linked)  # fmt: skip


@pytest.fixture
def ctx(damaged):
    with damaged.app.server.test_request_context("/"):
        yield


def test_runs_page_lists_damaged_runs_as_corrupt(damaged, ctx):
    frame = data.runs(damaged.root).set_index("run_id")
    for run_id in damaged.bad.values():
        assert frame.loc[run_id, "status"] == "corrupt"
        assert damaged.root not in frame.loc[run_id, "reason"]
    assert (frame.loc[damaged.good, "status"] == "complete").all()
    layout = damaged.pages.runs.layout()
    assert all(run_id in str(layout) for run_id in damaged.bad.values())


@pytest.mark.parametrize("which", ["writer", "schema", "link"])
def test_damaged_run_page_says_corrupt_without_paths(damaged, ctx, which):
    layout = damaged.pages.run.layout(run_id=damaged.bad[which])
    words = text(layout)
    assert "corrupt" in words and damaged.root not in words and str(Path.home()) not in words
    assert graphs(layout) == 0


def test_every_other_run_page_draws(damaged, ctx):
    for run_id in damaged.good:
        layout = damaged.pages.run.layout(run_id=run_id)
        assert graphs(layout) > 0, run_id
        assert "corrupt" not in text(layout)
    assert not data.metrics(damaged.root, [damaged.linked]).empty  # read through the link


def test_sweep_and_compare_pages_work_around_damaged_runs(damaged, ctx):
    sweep = damaged.pages.sweep
    assert graphs(sweep.layout(name="tiny")) > 0
    fig = sweep.update_phase_diagram("tiny", "gain", "cell", "loss_ratio")
    assert len(fig.data) > 0
    assert set(damaged.good) <= set(fig.layout.meta["gradlab"]["run_ids"])
    compare = damaged.pages.compare
    layout = compare.layout(runs=",".join([*damaged.good[:2], *damaged.bad.values()]))
    assert "corrupt" in text(layout) and damaged.root not in text(layout)
    assert graphs(layout) > 0
