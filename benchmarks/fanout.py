"""Wall time of 40 variations from a loopback server that answers each request after 1.0 s.

The client fans n=40 out into four requests of 10, run concurrently. Target: at most
1.3 s, against about 4 s for four sequential calls (measured here too, in the same run).
Run: python benchmarks/fanout.py
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from loopback import LoopbackServer, png_bytes

import ipy_images as ii


async def timed(client: ii.AsyncVariationClient, image: bytes, n: int, calls: int) -> float:
    """Seconds for `calls` sequential create_variation calls of `n` images each."""
    start = time.perf_counter()
    for _ in range(calls):
        response = await client.create_variation(image, n=n, size="256x256")
        assert len(response.data) == n
    return time.perf_counter() - start


async def main() -> None:
    image = png_bytes(size=(256, 256))
    with LoopbackServer() as server:
        server.latency = 1.0
        async with ii.AsyncVariationClient(
            "variations", base_url=server.base_url, max_retries=0
        ) as client:
            await client.create_variation(image, n=1, size="256x256")  # warm the connection
            fanned = await timed(client, image, n=40, calls=1)
            sequential = await timed(client, image, n=10, calls=4)
    print("server latency          1.0 s per request, 10 images per request")
    print(f"n=40 fanned out         {fanned:.2f} s  (4 concurrent requests; target <= 1.3 s)")
    print(f"4 sequential n=10 calls {sequential:.2f} s  (reference)")


if __name__ == "__main__":
    asyncio.run(main())
