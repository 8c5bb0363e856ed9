"""Median `import ipy_images` time beside `import openai`, each in fresh processes.

Target: ipy_images at most 0.35x openai's import time.
Run: python benchmarks/import_time.py [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

PROBE = "import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"


def median_import_seconds(module: str, runs: int) -> float:
    """Median wall time of importing `module` in `runs` fresh interpreters."""
    times = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", PROBE.format(module=module)],
            check=True,
            capture_output=True,
            text=True,
        )
        times.append(float(out.stdout))
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    # Interleave a warm-up of each, so both see the same disk cache.
    for module in ("ipy_images", "openai"):
        median_import_seconds(module, 1)
    ours = median_import_seconds("ipy_images", runs)
    reference = median_import_seconds("openai", runs)
    print(f"import ipy_images  median {ours * 1000:8.1f} ms  ({runs} fresh processes)")
    print(f"import openai      median {reference * 1000:8.1f} ms  ({runs} fresh processes)")
    print(f"ratio              {ours / reference:8.3f}x   (target <= 0.35x)")


if __name__ == "__main__":
    main()
