"""docs/record_benchmark.md is benchmarks/record.py's output, for every row of its grid.

The docs table is written by ``benchmarks/record.py --markdown`` and committed; these tests keep
it current: every grid row the benchmark has is in the table (and nothing else), every number
parses, and the markdown the benchmark writes reads back to what it measured.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "record_benchmark.md"


def load_benchmark(name: str, file: str) -> ModuleType:
    """benchmarks/`file` as module `name`, registered (as its dataclasses need)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    """benchmarks/record.py as a module."""
    try:
        yield load_benchmark("bench_record", "record.py")
    finally:
        del sys.modules["bench_record"]


def check_cells(row: dict[str, str], names: tuple[str, ...], bench: ModuleType) -> None:
    """Every cell of a table row parses: fused ms > 0, ratios min <= median <= max, MB >= 0."""
    label = row["row"]
    thread_columns = [c for c in row if c.startswith("fused ms (")]
    assert thread_columns, f"{label}: no timing column"
    for column in thread_columns:
        threads = column.removeprefix("fused ms ")
        assert float(row[column]) > 0, (label, column)
        for name in names:
            match = bench.RATIO_CELL.match(row[f"{name} {threads}"])
            assert match, (label, name, row[f"{name} {threads}"])
            median, low, high = map(float, match.groups())
            assert 0 < low <= median <= high, (label, name)
    for name in ("fused", *names):
        assert float(row[f"peak MB {name}"]) >= 0, (label, name)


def test_docs_table_has_every_grid_row_and_its_numbers_parse(bench):
    text = DOCS.read_text(encoding="utf-8")
    assert "Written by `benchmarks/record.py --markdown`" in text
    assert bench.PARTIAL not in text, "the committed table is of a run that did not finish"
    table = bench.read_markdown_table(text, "Grid")
    labels = [row.label for row in bench.grid_rows()]
    assert len(labels) == 32 and len(set(labels)) == len(labels)
    assert sorted(table) == sorted(labels), "rerun benchmarks/record.py --markdown"
    for label in labels:
        check_cells(table[label], ("record", "full"), bench)
    dashboard = bench.read_markdown_table(text, "Dashboard recording")
    assert list(dashboard) == [bench.DASHBOARD_LABEL]
    check_cells(dashboard[bench.DASHBOARD_LABEL], ("dashboard",), bench)


def test_docs_header_names_the_machine_and_says_whether_a_gpu_ran(bench):
    head = DOCS.read_text(encoding="utf-8").split("## Grid", 1)[0]
    for what in ("- CPU: ", " cores; torch ", " threads by default; measured at ", "- date: "):
        assert what in head, what
    assert "- device: CPU" not in head or "- GPU: " in head, "a CPU table says where the GPU's is"


def test_grid_rows_cover_cells_shapes_layers_and_directions(bench):
    rows = bench.grid_rows()
    for cell in ("tanh", "relu", "lstm", "gru"):
        own = [r for r in rows if r.cell == cell]
        assert {(r.T, r.N, r.B) for r in own if r.layers == 1 and not r.bidirectional} == set(
            bench.SHAPES
        )
        assert {(r.layers, r.bidirectional) for r in own} == {(1, False), (2, False), (1, True)}
    quick = bench.grid_rows(quick=True)
    assert quick and set(quick) < set(rows)


def test_markdown_reads_back_what_was_measured(bench, tmp_path):
    """Two tiny rows and a tiny dashboard recording, measured for real, written and read."""
    device = torch.device("cpu")
    rows = [bench.GridRow("lstm", 5, 4, 2), bench.GridRow("gru", 5, 4, 2, bidirectional=True)]
    results = [bench.measure(row, 2, device, memory=False) for row in rows]
    results = [
        bench.GridResult(r.label, r.timings, {"fused": 1.0, "record": 2.0, "full": 3.0})
        for r in results
    ]
    timing = bench.timed_rounds(bench.dashboard_fns(device, (5, 4, 2)), 2, device)
    dashboard = bench.GridResult(
        bench.DASHBOARD_LABEL, {1: timing}, {"fused": 1.0, "dashboard": 4.0}
    )
    machine = bench.machine_lines(device, torch.get_num_threads())
    path = tmp_path / "record_benchmark.md"
    bench.write_markdown(path, results, dashboard, 2, device, machine, ["GPU: none"], 3)
    text = path.read_text(encoding="utf-8")
    assert f"{bench.PARTIAL} 2 of 3 grid rows" in text
    table = bench.read_markdown_table(text, "Grid")
    assert list(table) == [row.label for row in rows]
    for result in results:
        check_cells(table[result.label], ("record", "full"), bench)
        for count, measured in result.timings.items():
            cell = table[result.label][f"record ({bench._threads_name(count)})"]
            median = float(bench.RATIO_CELL.match(cell).group(1))
            assert median == pytest.approx(measured.ratios["record"][0], abs=0.005)
    check_cells(
        bench.read_markdown_table(text, "Dashboard recording")[bench.DASHBOARD_LABEL],
        ("dashboard",),
        bench,
    )


FLOORS = REPO / "docs" / "record_floors.md"


@pytest.fixture(scope="module")
def floors(bench) -> ModuleType:
    """benchmarks/record_floors.py as a module (it puts benchmarks/ on sys.path and imports
    benchmarks/record.py as `record`; both are undone after)."""
    path, modules = list(sys.path), set(sys.modules)
    try:
        yield load_benchmark("bench_floors", "record_floors.py")
    finally:
        sys.path[:] = path
        for name in set(sys.modules) - modules:
            if name in ("bench_floors", "record", "record_memory"):
                del sys.modules[name]


def check_floor(label: str, floor: dict) -> None:
    """The floor is the sum of the parts marked as in it, and its verdict says which side of
    the target it is on."""
    counted = [median for median, inside in floor["parts"].values() if inside]
    assert counted, label
    assert floor["floor"] == pytest.approx(sum(counted), abs=0.005 * len(counted) + 1e-9), label
    assert floor["verdict"] == ("above" if floor["floor"] > floor["target"] else "within"), label


def test_docs_floors_are_the_sums_of_their_parts(floors, bench):
    text = FLOORS.read_text(encoding="utf-8")
    assert "Written by `benchmarks/record_floors.py --markdown`" in text
    read = floors.read_markdown(text)
    T, N, B = bench.DASHBOARD_SHAPE
    dashboard = read[f"dashboard recording, tanh T={T} N={N} B={B}"]
    T, N, B = floors.LSTM_SHAPE
    lstm = read[f"record, lstm T={T} N={N} B={B}, its adjoint a loop of torch ops"]
    assert dashboard["target"] == bench.DASHBOARD_TARGET and lstm["target"] == bench.RECORD_TARGET
    inside = [p for p, (_, counted) in dashboard["parts"].items() if counted]
    assert inside[0] == "forward (kernel, no autograd)" and inside[2] == "long-range products"
    assert inside[1] in floors.SPECTRUM_WAYS and len(inside) == 3
    assert (
        min(dashboard["parts"][way][0] for way in floors.SPECTRUM_WAYS)
        == (dashboard["parts"][inside[1]][0])
    ), "the floor adds the faster way to the spectrum"
    assert [p for p, (_, counted) in lstm["parts"].items() if counted] == [
        "forward (kernel, no autograd)", "adjoint scan"
    ]  # fmt: skip
    for label, floor in read.items():
        check_floor(label, floor)


def test_floors_read_back_what_was_measured(floors, tmp_path):
    """Both floors measured for real at tiny sizes, written and read back."""
    measured = floors.measure_all(2, dashboard_shape=(4, 8, 2), lstm_shape=(6, 8, 1))
    path = tmp_path / "record_floors.md"
    floors.write_markdown(path, measured, 2)
    read = floors.read_markdown(path.read_text(encoding="utf-8"))
    assert list(read) == [floor.label for floor in measured]
    for floor in measured:
        assert read[floor.label]["floor"] == pytest.approx(floor.floor, abs=0.005)
        for name, (median, _, _) in floor.parts.items():
            assert read[floor.label]["parts"][name] == (
                pytest.approx(median, abs=0.005),
                name in floor.floor_parts,
            )
        check_floor(floor.label, read[floor.label])


def test_floor_parts_compute_what_they_name(floors):
    """At a tiny tanh RNN: the long-range products are `Recording.jacobian`'s, both ways to row
    0's step spectrum give `step_singular_values`, and the split over threads is bitwise one
    LAPACK call on one thread."""
    import gradlab
    from gradlab.record import one_thread

    torch.manual_seed(0)
    T, N, B = 6, 5, 3
    model = gradlab.RNN(N, N, "tanh")
    rec = gradlab.record(model, torch.randn(T, B, N), lambda out: out[-1].square().mean())
    jacobians = rec.step_jacobians(samples=[0, 1])
    products = torch.empty_like(jacobians)
    floors.long_range_products(jacobians, products)
    for k in range(T):
        want = rec.jacobian(T, k, samples=[0, 1])
        torch.testing.assert_close(products[k], want, rtol=1e-5, atol=1e-7)
    want = rec.step_singular_values(samples=[0])[:, 0]  # (T, S), descending
    by_svd = floors.split_over_threads(torch.linalg.svdvals, jacobians[:, 0].contiguous(), 2)
    with one_thread():
        assert torch.equal(by_svd, torch.linalg.svdvals(jacobians[:, 0]))
    by_structure = floors.structured_tanh_spectrum(model.weight_hh_l0, rec.hidden[1:, 0], 2)
    torch.testing.assert_close(by_svd, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(by_structure.flip(-1).float(), want, rtol=1e-5, atol=1e-6)
