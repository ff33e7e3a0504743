"""Fixtures of the probe tests: one recorded tiny model per case (see probe_cases.py)."""

from __future__ import annotations

import pytest
from probe_cases import CASES, Case, cached_recording

import gradlab
from gradlab.probes import ProbeContext


@pytest.fixture(params=CASES, ids=[c.id for c in CASES])
def case(request) -> Case:
    return request.param


@pytest.fixture
def recorded(case: Case) -> tuple[gradlab.Recording, ProbeContext]:
    return cached_recording(case)
