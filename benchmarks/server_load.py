"""A load run of `ipy-images serve` on loopback: 50 concurrent clients, good and bad requests.

The server runs as the real command in a subprocess (2 workers, queue of 8). Each client
sends 4 requests in a row, drawn from a fixed mix: valid (n=1, 256x256, b64_json), JPEG
bytes (wrong type), a 6 MB body with and without Content-Length (oversized), a non-square
PNG, and garbage multipart. It prints how many requests got an answer, the statuses per
kind, p50/p95 latency, and whether the server is still healthy and serving afterwards.
Nothing may crash: every request must get an HTTP answer, no 5xx, no traceback in the log.
Run: python benchmarks/server_load.py
"""

from __future__ import annotations

import asyncio
import io
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from PIL import Image, ImageDraw

CLIENTS = 50
REQUESTS_PER_CLIENT = 4
MB = 1024 * 1024


def picture_png(width: int, height: int, fmt: str = "PNG") -> bytes:
    image = Image.new("RGB", (width, height), (235, 225, 200))
    draw = ImageDraw.Draw(image)
    draw.rectangle((4, 4, width // 2, height - 4), fill=(40, 90, 160))
    draw.ellipse((width // 4, height // 4, width - 4, height - 4), fill=(200, 60, 40))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


SQUARE = picture_png(96, 96)
WIDE = picture_png(120, 80)
JPEG = picture_png(96, 96, "JPEG")
FORM = {"n": "1", "size": "256x256", "response_format": "b64_json"}


async def _oversized_chunks() -> AsyncIterator[bytes]:
    for _ in range(6):
        yield b"x" * MB


Send = Callable[[httpx.AsyncClient], Any]
KINDS: dict[str, Send] = {
    "valid": lambda c: c.post("/images/variations", files={"image": ("a.png", SQUARE)}, data=FORM),
    "wrong type (jpeg)": lambda c: c.post(
        "/images/variations", files={"image": ("a.png", JPEG, "image/png")}, data=FORM
    ),
    "non-square": lambda c: c.post(
        "/images/variations", files={"image": ("a.png", WIDE)}, data=FORM
    ),
    "oversized 6 MB": lambda c: c.post(
        "/images/variations",
        content=b"x" * (6 * MB),
        headers={"content-type": "multipart/form-data; boundary=b"},
    ),
    "oversized chunked": lambda c: c.post(
        "/images/variations",
        content=_oversized_chunks(),
        headers={"content-type": "multipart/form-data; boundary=b"},
    ),
    "garbage multipart": lambda c: c.post(
        "/images/variations",
        content=random.randbytes(2048),
        headers={"content-type": "multipart/form-data; boundary=zz"},
    ),
}
WEIGHTS = {
    "valid": 4,
    "wrong type (jpeg)": 1,
    "non-square": 1,
    "oversized 6 MB": 1,
    "oversized chunked": 1,
    "garbage multipart": 1,
}


@dataclass
class Outcome:
    kind: str
    status: int | None  # None: no HTTP answer at all
    seconds: float
    retry_after: str | None = None


async def client(base_url: str, plan: list[str]) -> list[Outcome]:
    """One client with its own connection, sending its requests one after another."""
    outcomes = []
    async with httpx.AsyncClient(base_url=base_url, timeout=300) as http:
        for kind in plan:
            start = time.perf_counter()
            try:
                answer = await KINDS[kind](http)
                outcome = Outcome(
                    kind,
                    answer.status_code,
                    time.perf_counter() - start,
                    answer.headers.get("retry-after"),
                )
            except httpx.HTTPError:
                outcome = Outcome(kind, None, time.perf_counter() - start)
            outcomes.append(outcome)
    return outcomes


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def start_server() -> tuple[subprocess.Popen[str], str, list[str]]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ipy_images.cli",
            "serve",
            "--port",
            "0",
            "--log-level",
            "warning",
            "--workers",
            "2",
            "--queue",
            "8",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.readline()
    if not first.startswith("ipy-images: serving"):
        process.kill()
        raise SystemExit(f"the server did not start: {first!r}")
    log: list[str] = []
    for stream in (process.stdout, process.stderr):
        threading.Thread(target=lambda s=stream: log.extend(s), daemon=True).start()
    return process, first.split()[-1], log


async def run(base_url: str) -> tuple[list[Outcome], float]:
    rng = random.Random(7)
    kinds, weights = list(WEIGHTS), list(WEIGHTS.values())
    plans = [rng.choices(kinds, weights, k=REQUESTS_PER_CLIENT) for _ in range(CLIENTS)]
    start = time.perf_counter()
    results = await asyncio.gather(*(client(base_url, plan) for plan in plans))
    return [o for outcomes in results for o in outcomes], time.perf_counter() - start


async def after_load(base_url: str) -> tuple[dict[str, Any], int]:
    async with httpx.AsyncClient(base_url=base_url, timeout=300) as http:
        health = (await http.get(base_url.removesuffix("/v1") + "/health")).json()
        answer = await KINDS["valid"](http)
    return health, answer.status_code


def main() -> None:
    process, base_url, log = start_server()
    try:
        httpx.post(
            f"{base_url}/images/variations",
            files={"image": ("a.png", SQUARE)},
            data=FORM,
            timeout=300,
        )  # warm the engine, so the run measures serving
        outcomes, wall = asyncio.run(run(base_url))
        health, status_after = asyncio.run(after_load(base_url))
    finally:
        process.send_signal(signal.SIGINT)
        exit_status = process.wait(timeout=60)

    answered = [o for o in outcomes if o.status is not None]
    print(
        f"load run: {CLIENTS} concurrent clients x {REQUESTS_PER_CLIENT} requests on "
        f"loopback, server with 2 workers + queue of 8, {wall:.1f} s wall"
    )
    print(f"requests answered   {len(answered)}/{len(outcomes)}")
    by_kind: dict[str, Counter[int | None]] = defaultdict(Counter)
    for o in outcomes:
        by_kind[o.kind][o.status] += 1
    print("statuses per kind")
    for kind in WEIGHTS:
        counts = ", ".join(
            f"{s or 'no answer'} x{n}"
            for s, n in sorted(by_kind[kind].items(), key=lambda item: item[0] or 0)
        )
        print(f"  {kind:<19} {counts}")
    print("latency (s)          p50     p95     max")
    groups = {
        "all": [o.seconds for o in outcomes],
        "200 (generated)": [o.seconds for o in outcomes if o.status == 200],
        "4xx (refused)": [o.seconds for o in outcomes if o.status and o.status >= 400],
    }
    for name, values in groups.items():
        if values:
            print(
                f"  {name:<17} {statistics.median(values):7.3f} "
                f"{percentile(values, 0.95):7.3f} {max(values):7.3f}"
            )
    retry_after = sorted({o.retry_after for o in outcomes if o.status == 429 and o.retry_after})
    print(f"429 Retry-After values: {', '.join(retry_after) or 'none'}")
    server_errors = sum(1 for o in answered if o.status >= 500)
    tracebacks = sum("Traceback" in line for line in log)
    print(f"5xx answers         {server_errors}")
    print(
        f"after the run       /health {health['status']} (in flight {health['in_flight']}), "
        f"a valid request -> {status_after}"
    )
    print(f"server log          {tracebacks} tracebacks; exit status after Ctrl-C: {exit_status}")
    ok = (
        len(answered) == len(outcomes)
        and not server_errors
        and not tracebacks
        and health["status"] == "ok"
        and status_after == 200
        and exit_status == 0
    )
    print(
        "verdict             " + ("OK: every request answered, server healthy" if ok else "FAILED")
    )
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
