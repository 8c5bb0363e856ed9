"""Run the robustness corpus and print a table of cases tried and held.

The cases are tests/robustness/cases.py: bad inputs, wrong types passed to every public
function, and the fault matrix (variations and edits backends against a misbehaving
loopback server). Each row: case | expected | got | held | seconds; then totals.
Run: python benchmarks/robustness.py [--only inputs,types,faults] [--failures]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

# tests/ first: its loopback server, and `robustness` meaning the test package, not this file.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from loopback import LoopbackServer
from robustness.cases import (
    FAULT_CASES,
    INPUT_CASES,
    AssetServer,
    Outcome,
    clean_env,
    run_fault_case,
    run_input_case,
    run_type_case,
    type_matrix,
)

GROUPS = ("inputs", "types", "faults")


def inputs() -> Iterable[Outcome]:
    with tempfile.TemporaryDirectory() as tmp, AssetServer() as assets, LoopbackServer() as server:
        for index, case in enumerate(INPUT_CASES):
            workdir = Path(tmp) / str(index)
            workdir.mkdir()
            yield run_input_case(case, workdir, assets, server)


def types() -> Iterable[Outcome]:
    with LoopbackServer() as server:
        for case, label, value in type_matrix():
            started = time.perf_counter()
            outcome = run_type_case(case, label, value, server)
            yield Outcome(**{**vars(outcome), "seconds": time.perf_counter() - started})


def faults() -> Iterable[Outcome]:
    for case in FAULT_CASES:
        with LoopbackServer() as server:  # a fresh server: attempts are counted per case
            yield run_fault_case(case, server)


def table(title: str, outcomes: list[Outcome], failures_only: bool) -> None:
    shown = [o for o in outcomes if not (failures_only and o.held)]
    widths = [
        max([len(header)] + [len(text) for text in column])
        for header, column in (
            ("case", [o.name for o in shown]),
            ("expected", [o.expected for o in shown]),
            ("got", [o.got for o in shown]),
        )
    ]
    print(f"\n## {title}: {sum(o.held for o in outcomes)} of {len(outcomes)} held\n")
    header = ("case", "expected", "got")
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " | held | s")
    print("-|-".join("-" * w for w in widths) + "-|------|-----")
    for o in shown:
        cells = (o.name, o.expected, o.got)
        line = " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))
        print(f"{line} | {'yes' if o.held else 'NO '}  | {o.seconds:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(GROUPS), help="comma-separated groups")
    parser.add_argument("--failures", action="store_true", help="list only cases that failed")
    args = parser.parse_args()
    runners: dict[str, Callable[[], Iterable[Outcome]]] = {
        "inputs": inputs,
        "types": types,
        "faults": faults,
    }
    totals: list[tuple[str, list[Outcome], float]] = []
    with clean_env():
        for group in args.only.split(","):
            started = time.perf_counter()
            outcomes = list(runners[group]())
            totals.append((group, outcomes, time.perf_counter() - started))
            table(group, outcomes, args.failures)
    print("\n## totals\n")
    for group, outcomes, seconds in totals:
        held = sum(o.held for o in outcomes)
        print(
            f"{group:<7} tried {len(outcomes):>4}  held {held:>4}  failed {len(outcomes) - held:>3}"
            f"  ({seconds:.1f} s)"
        )
    tried = sum(len(o) for _, o, _ in totals)
    held = sum(sum(x.held for x in o) for _, o, _ in totals)
    print(f"{'all':<7} tried {tried:>4}  held {held:>4}  failed {tried - held:>3}")
    return 0 if held == tried else 1


if __name__ == "__main__":
    sys.exit(main())
