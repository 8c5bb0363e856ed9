"""The bad-input corpus, wrong types and the fault matrix of cases.py, one test per case."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from loopback import LoopbackServer

from .cases import (
    FAULT_CASES,
    INPUT_CASES,
    AssetServer,
    FaultCase,
    InputCase,
    Outcome,
    TypeCase,
    run_fault_case,
    run_input_case,
    run_type_case,
    type_case_id,
    type_matrix,
)


def check(outcome: Outcome) -> None:
    assert outcome.held, f"{outcome.name}: expected {outcome.expected}; got {outcome.got}"


@pytest.mark.parametrize("case", INPUT_CASES, ids=[case.name for case in INPUT_CASES])
def test_bad_input(
    case: InputCase, tmp_path: Path, assets: AssetServer, loopback: LoopbackServer
) -> None:
    """The right typed error and no request, or the right prepared image sent once."""
    check(run_input_case(case, tmp_path, assets, loopback))


TYPES = type_matrix()


@pytest.mark.parametrize(
    ("case", "label", "value"), TYPES, ids=[type_case_id(c, label) for c, label, _ in TYPES]
)
def test_wrong_type(case: TypeCase, label: str, value: Any, loopback: LoopbackServer) -> None:
    """A clear error naming the problem (never AttributeError/KeyError), nothing sent."""
    check(run_type_case(case, label, value, loopback))


@pytest.mark.parametrize("case", FAULT_CASES, ids=[case.id for case in FAULT_CASES])
def test_fault(case: FaultCase, loopback: LoopbackServer) -> None:
    """Retried when it should be, a typed error otherwise, arrived images kept."""
    check(run_fault_case(case, loopback))
