"""`ipy-images serve` on loopback under attack: a mix of clients, stalled uploads, slow
connections, then the official SDK.

The server runs as the real command in a subprocess (2 workers, queue of 8, the defaults).

Phase 1 (60 s): 50 clients send requests one after another, drawn from a fixed mix: valid
(n=1, 256x256, b64_json), JPEG bytes (wrong type), a 6 MB body with and without
Content-Length (oversized), a non-square PNG and garbage multipart; a polite client waits
as long as a 429's Retry-After says. Meanwhile 300 connections each send 4.9 MB of a 5 MB
upload and stall, and 2,000 slow connections trickle header lines and reconnect when they
are dropped.
Phase 2: 20 official-SDK (`openai`) clients at once, with the SDK's default 2 retries,
while the 2,000 slow connections go on.

Printed: statuses per kind (no 5xx), what became of the stalled uploads, /health latency
during each phase (target p95 under 1 s), the server's peak and final RSS (target under
600 MB), and how many SDK clients finally succeeded (target 20 of 20). Loopback only;
every loop stops by itself. Needs about 2,500 descriptors (`ulimit -n`), raised to the
hard limit here. Run: python benchmarks/server_load.py [--quick]  (a tenth of the attack)
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import random
import resource
import signal
import statistics
import subprocess
import sys
import threading
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import openai
from PIL import Image, ImageDraw

warnings.filterwarnings("ignore", category=DeprecationWarning)  # the legacy endpoint is the point

MB = 1024 * 1024
CLIENTS = 50
MIX_SECONDS = 60.0
STALLED = 300
STALLED_BYTES = 5 * MB
STALLED_SENT = int(4.9 * MB)
SLOW = 2000
SDK_CLIENTS = 20
HEALTH_EVERY = 0.25
TARGETS = {"health_p95": 1.0, "rss_mb": 600, "sdk": SDK_CLIENTS}


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


class Attack:
    """What the attackers saw, and when phases end."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.root = base_url.removesuffix("/v1")
        self.port = int(self.root.rsplit(":", 1)[1])
        self.statuses: dict[str, Counter[str]] = defaultdict(Counter)
        self.stalled: Counter[str] = Counter()
        self.slow: Counter[str] = Counter()
        self.health: dict[str, list[float]] = defaultdict(list)
        self.retry_after: Counter[str] = Counter()
        self.slow_until = 0.0


async def mixed_client(attack: Attack, rng: random.Random, until: float) -> None:
    kinds, weights = list(WEIGHTS), list(WEIGHTS.values())
    async with httpx.AsyncClient(base_url=attack.base_url, timeout=300) as http:
        while time.monotonic() < until:
            kind = rng.choices(kinds, weights)[0]
            try:
                answer = await KINDS[kind](http)
            except httpx.HTTPError as exc:
                attack.statuses[kind][type(exc).__name__] += 1
                continue
            attack.statuses[kind][str(answer.status_code)] += 1
            if answer.status_code == 429:
                wait = answer.headers.get("retry-after", "1")
                attack.retry_after[wait] += 1
                await asyncio.sleep(min(float(wait), max(0.0, until - time.monotonic())))


async def stalled_upload(attack: Attack, hold: float) -> None:
    """Send most of a 5 MB body, then stall until the server answers or `hold` passes."""
    head = (
        "POST /v1/images/variations HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\n"
        f"Content-Length: {STALLED_BYTES}\r\n\r\n"
        '--b\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n'
    ).encode()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", attack.port)
    except OSError as exc:
        attack.stalled[f"connect failed ({type(exc).__name__})"] += 1
        return
    try:
        writer.write(head + os.urandom(STALLED_SENT - len(head)))
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), hold)
        status = line.split()[1].decode() if line.startswith(b"HTTP/") else "closed"
        attack.stalled[f"answered {status}" if status != "closed" else "closed"] += 1
    except TimeoutError:
        attack.stalled["still held when the phase ended"] += 1
    except OSError as exc:
        attack.stalled[f"dropped ({type(exc).__name__})"] += 1
    finally:
        writer.close()


async def slow_connection(attack: Attack) -> None:
    """Trickle header lines, one every 2 s; reconnect when dropped, until `slow_until`."""
    while time.monotonic() < attack.slow_until:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", attack.port)
        except OSError:
            attack.slow["connect failed"] += 1
            await asyncio.sleep(1)
            continue
        attack.slow["connections"] += 1
        try:
            writer.write(b"GET /health HTTP/1.1\r\n")
            while time.monotonic() < attack.slow_until and not reader.at_eof():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(reader.read(1), 2)  # b"" once the server closes
                writer.write(b"X-Slow: 1\r\n")
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()
        if time.monotonic() < attack.slow_until:
            attack.slow["dropped by the server"] += 1


async def health_probe(attack: Attack, phase: str, until: float) -> None:
    """A fresh connection each time, as a load balancer's health check makes."""
    while time.monotonic() < until:
        started = time.perf_counter()
        try:
            async with httpx.AsyncClient(timeout=30) as http:
                answer = await http.get(f"{attack.root}/health")
            elapsed = time.perf_counter() - started
            attack.health[phase].append(elapsed if answer.status_code == 200 else float("inf"))
        except httpx.HTTPError:
            attack.health[phase].append(float("inf"))
        await asyncio.sleep(HEALTH_EVERY)


async def sdk_client(base_url: str) -> str:
    client = openai.AsyncOpenAI(base_url=base_url, api_key="-")  # default: 2 retries
    try:
        result = await client.images.create_variation(
            image=("a.png", SQUARE), n=1, size="256x256", response_format="b64_json"
        )
        return "succeeded" if result.data and result.data[0].b64_json else "empty answer"
    except openai.APIStatusError as exc:
        return f"failed: {exc.status_code}"
    except openai.APIError as exc:
        return f"failed: {type(exc).__name__}"
    finally:
        await client.close()


async def run(base_url: str) -> tuple[Attack, Counter[str], float, float]:
    attack = Attack(base_url)
    rng = random.Random(7)
    start = time.monotonic()
    mix_until = start + MIX_SECONDS
    attack.slow_until = float("inf")  # through both phases
    slow = []
    for _ in range(SLOW):  # 2,000 in two seconds
        slow.append(asyncio.ensure_future(slow_connection(attack)))
        await asyncio.sleep(2 / SLOW)
    stalled = [asyncio.ensure_future(stalled_upload(attack, MIX_SECONDS)) for _ in range(STALLED)]
    await asyncio.gather(
        health_probe(attack, "phase 1", mix_until),
        *(mixed_client(attack, random.Random(rng.random()), mix_until) for _ in range(CLIENTS)),
    )
    await asyncio.gather(*stalled)
    mix_seconds = time.monotonic() - start  # the last requests' answers come after 60 s
    print(f"[phase 1 over after {mix_seconds:.0f} s]", file=sys.stderr, flush=True)

    # Phase 2: the SDK clients, the slow connections still on.
    sdk_start = time.monotonic()
    probe = asyncio.ensure_future(health_probe(attack, "phase 2", float("inf")))
    outcomes = Counter(await asyncio.gather(*(sdk_client(base_url) for _ in range(SDK_CLIENTS))))
    print(f"[phase 2 over after {time.monotonic() - sdk_start:.0f} s]", file=sys.stderr, flush=True)
    sdk_seconds = time.monotonic() - sdk_start
    attack.slow_until = 0.0
    probe.cancel()
    await asyncio.gather(probe, *slow, return_exceptions=True)
    return attack, outcomes, mix_seconds, sdk_seconds


def start_server() -> tuple[subprocess.Popen[str], str, list[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "ipy_images.cli", "serve", "--port", "0", "--log-level", "warning"],
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


def memory_mb(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    global CLIENTS, MIX_SECONDS, STALLED, SLOW, SDK_CLIENTS
    if "--quick" in sys.argv[1:]:  # a smoke run of the script itself, not a measurement
        CLIENTS, MIX_SECONDS, STALLED, SLOW, SDK_CLIENTS = 5, 15.0, 30, 200, 4
        TARGETS["sdk"] = SDK_CLIENTS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the server inherits it
    load_before = os.getloadavg()
    process, base_url, log = start_server()
    try:
        warm = httpx.post(
            f"{base_url}/images/variations",
            files={"image": ("a.png", SQUARE)},
            data=FORM,
            timeout=300,
        )  # warm the engine, so the run measures serving
        rss_idle = memory_mb(process.pid, "VmRSS")
        attack, sdk, mix_seconds, sdk_seconds = asyncio.run(run(base_url))
        rss_peak = memory_mb(process.pid, "VmHWM")
        rss_after = memory_mb(process.pid, "VmRSS")
        health_after = httpx.get(base_url.removesuffix("/v1") + "/health", timeout=30).json()
    finally:
        process.send_signal(signal.SIGINT)
        exit_status = process.wait(timeout=90)
    load_after = os.getloadavg()

    print(
        f"server_load: ipy-images serve (2 workers + queue of 8) on loopback, "
        f"{os.cpu_count()} cores, load average {load_before[0]:.1f} before / "
        f"{load_after[0]:.1f} after (shared machine), ulimit -n {hard} (was {soft})"
    )
    print(f"warm-up generation -> {warm.status_code}")
    print(
        f"\nphase 1 ({MIX_SECONDS:.0f} s of new requests, {mix_seconds:.0f} s to the last answer): "
        f"{CLIENTS} clients mixing valid and garbage requests, {STALLED} stalled "
        f"{STALLED_BYTES // MB} MB uploads, {SLOW} slow connections"
    )
    print("statuses per kind")
    for kind in WEIGHTS:
        counts = ", ".join(f"{s} x{n}" for s, n in sorted(attack.statuses[kind].items()))
        print(f"  {kind:<19} {counts}")
    retry = ", ".join(f"{s} s x{n}" for s, n in sorted(attack.retry_after.items(), key=_num))
    print(f"  429 Retry-After    {retry or 'none'}")
    stalled = ", ".join(f"{s} x{n}" for s, n in sorted(attack.stalled.items()))
    print(f"stalled uploads      {stalled}")
    print(
        f"slow connections     {attack.slow['connections']} opened, "
        f"{attack.slow['dropped by the server']} dropped by the server, "
        f"{attack.slow['connect failed']} connects failed"
    )
    print(f"\nphase 2 ({sdk_seconds:.0f} s): {SDK_CLIENTS} official-SDK clients, 2 default retries")
    print(f"  outcomes           {', '.join(f'{s} x{n}' for s, n in sorted(sdk.items()))}")

    print("\n/health latency (s)  probes  p50     p95     max     target p95")
    for phase, values in attack.health.items():
        print(
            f"  {phase:<18} {len(values):6d}  {statistics.median(values):6.3f}  "
            f"{percentile(values, 0.95):6.3f}  {max(values):6.3f}  < {TARGETS['health_p95']:g}"
        )
    print("server RSS (MB)      idle    peak    after   target peak")
    print(
        f"                     {rss_idle:6.0f}  {rss_peak:6.0f}  {rss_after:6.0f}  "
        f"< {TARGETS['rss_mb']}"
    )
    server_errors = sum(
        n for counts in attack.statuses.values() for s, n in counts.items() if s.startswith("5")
    )
    tracebacks = sum("Traceback" in line for line in log)
    succeeded = sdk["succeeded"]
    p95 = max(percentile(values, 0.95) for values in attack.health.values())
    print(f"\n5xx answers          {server_errors}")
    print(f"SDK clients          {succeeded} of {SDK_CLIENTS} succeeded (target {TARGETS['sdk']})")
    print(
        f"after the run        /health {health_after['status']} "
        f"(in flight {health_after['in_flight']}); {tracebacks} tracebacks in the log; "
        f"exit status after Ctrl-C: {exit_status}"
    )
    ok = (
        not server_errors
        and not tracebacks
        and p95 < TARGETS["health_p95"]
        and rss_peak < TARGETS["rss_mb"]
        and succeeded == TARGETS["sdk"]
        and exit_status == 0
    )
    print("verdict              " + ("OK: every target met" if ok else "FAILED: see above"))
    if not ok:
        raise SystemExit(1)


def _num(item: tuple[str, int]) -> float:
    try:
        return float(item[0])
    except ValueError:
        return float("inf")


if __name__ == "__main__":
    main()
