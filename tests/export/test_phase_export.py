"""``gradlab export --sweep vanishing-vs-lstm --figure phase_diagram`` on a sweep of cell × task ×
seq_len (store_cases.PHASE_SWEEP): the PDF's text holds each facet title and the x-axis title
once, inside the page, on categorical seq_len; the CSV holds the cells' values, n and the fixed
keys."""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter

import pandas as pd
import pytest
from export_cases import browser
from store_cases import PHASE_CELLS, PHASE_SEQ_LENS, PHASE_SWEEP

from gradlab.export.command import add_arguments, run
from gradlab.export.layout_check import check_pdf


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="gradlab export")
    add_arguments(parser)
    return run(parser.parse_args(list(argv)))


def pdf_words(path) -> tuple[list[tuple[float, float, float, float, str]], object]:
    """(every word of page 1 with its box, the page rectangle)."""
    import pymupdf

    page = pymupdf.open(path)[0]
    return [tuple(w[:5]) for w in page.get_text("words")], page.rect


@browser
@pytest.mark.parametrize("width", ["single", "double"])
def test_phase_diagram_pdf_has_each_facet_and_x_title_once(phase_store, tmp_path, width):
    out = tmp_path / "phase.pdf"
    code = cli("--store", str(phase_store.root), "--sweep", PHASE_SWEEP, "--width", width,
               "--figure", "phase_diagram", "--out", str(out))  # fmt: skip
    assert code == 0 and out.is_file()
    words, _ = pdf_words(out)
    counts = Counter(w[4] for w in words)
    for cell in PHASE_CELLS:  # the default facet: one panel per cell, titled once
        assert counts[cell] == 1, (cell, counts)
    assert counts["sequence"] == counts["length"] == 1  # ONE shared x-axis title
    for seq_len in PHASE_SEQ_LENS:  # categorical ticks, once per panel
        assert counts[str(seq_len)] >= len(PHASE_CELLS), seq_len
    report = check_pdf(out.read_bytes())
    assert not report.outside and not report.overlaps, report.problems()
    glued = [w[4] for w in words if re.search(r"\d−", w[4])]  # "−0.6−0.6": cell values touching
    assert not glued, glued
    titles = [w for w in words if w[4] in PHASE_CELLS]
    assert len({round(w[1]) for w in titles}) == 1  # one row of titles, above the panels
    doc = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert doc["options"]["x"] == "seq_len" and doc["options"]["facet"] == "cell"
    table = pd.read_csv(out.with_suffix(".csv"))
    assert {"cell", "seq_len", "task", "decay_rate", "n", "run_ids"} <= set(table.columns)
    assert sorted(set(table["seq_len"])) == list(PHASE_SEQ_LENS)
    assert table.groupby("cell")["n"].max().to_dict() == {"gru": 1, "lstm": 1, "rnn": 2}


@browser
def test_fix_option_names_the_fixed_key(phase_store, tmp_path):
    out = tmp_path / "fixed.pdf"
    code = cli("--store", str(phase_store.root), "--sweep", PHASE_SWEEP,
               "--figure", "phase_diagram", "--option", "x=seq_len", "--option", "y=cell",
               "--option", "fix=task:identity", "--out", str(out))  # fmt: skip
    assert code == 0
    words = " ".join(w[4] for w in pdf_words(out)[0]).replace("ﬁ", "fi")  # DejaVu's ligature
    assert "fixed: task = identity" in words
    table = pd.read_csv(out.with_suffix(".csv"))
    assert set(table["task"]) == {"identity"} and len(table) == len(PHASE_CELLS) * 4
    doc = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert doc["options"]["fix"] == {"task": "identity"}
