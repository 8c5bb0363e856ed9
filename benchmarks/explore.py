"""Kernel time and bytes per A/B wipe update at 1024 px, beside a naive full-PNG update.

Two 1024x1024 photos (the bundled samples, scaled up) are compared at 101 slider
positions. "explorer" is what VariationExplorer sends (numpy composite, JPEG q90 4:4:4);
the reference composes with Pillow and sends a full-resolution PNG, as a naive widget
would. Then what opening an explorer of two 1024 px images sends (thumbnails) against
their full PNGs. Then a simulated drag (slider events at 60 Hz for 2 s) goes through a real
VariationExplorer: how many frames it rendered and sent, against one per event.

    python benchmarks/explore.py
"""

from __future__ import annotations

import io
import statistics
import time
from collections.abc import Callable

from PIL import Image

import ipy_images as ii
from ipy_images.explorer import Wipe
from ipy_images.models import ImageData, ImagesResponse
from ipy_images.sources import prepare_image

SIZE = 1024
POSITIONS = [float(p) for p in range(0, 101)]
DRAG_EVENTS, DRAG_HZ = 120, 60


def photos() -> tuple[Image.Image, Image.Image]:
    def big(name: str) -> Image.Image:
        picture = ii.sample_image(name)
        side = min(picture.size)
        picture = picture.crop((0, 0, side, side))
        return picture.resize((SIZE, SIZE), Image.Resampling.LANCZOS)

    return big("coffee"), big("astronaut")


def naive_png(a: Image.Image, b: Image.Image, position: float) -> bytes:
    """The reference: a Pillow composite sent as a full-resolution PNG."""
    split = round(SIZE * position / 100)
    frame = b.copy()
    frame.paste(a.crop((0, 0, split, SIZE)), (0, 0))
    buffer = io.BytesIO()
    frame.save(buffer, "PNG")
    return buffer.getvalue()


def measure(update: Callable[[float], bytes]) -> tuple[float, float, float]:
    """Median and 95th-percentile milliseconds per update, and mean bytes sent."""
    times, sizes = [], []
    for position in POSITIONS:
        start = time.perf_counter()
        sizes.append(len(update(position)))
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95)], statistics.mean(sizes)


def drag(a: Image.Image, b: Image.Image) -> tuple[int, int, float]:
    """Frames rendered, bytes sent and ms until the last position shows, for one drag."""
    explorer = ii.VariationExplorer(response_of(a, b))
    explorer.compare("1.1", "1.2", position=50)
    time.sleep(0.5)
    sent: list[int] = []
    explorer.wipe.observe(lambda change: sent.append(len(change["new"])), names="value")
    final = Wipe(a, b).jpeg(100.0)
    for event in range(DRAG_EVENTS):
        explorer.position.value = 100 * (event + 1) / DRAG_EVENTS
        time.sleep(1 / DRAG_HZ)
    end = time.perf_counter()
    while explorer.wipe.value != final:
        time.sleep(0.005)
    return len(sent), sum(sent), (time.perf_counter() - end) * 1000


def response_of(a: Image.Image, b: Image.Image) -> ImagesResponse:
    """A response holding `a` and `b` as its two results, as a backend would return them."""
    return ImagesResponse(
        created=0,
        data=[ImageData(content=_png(picture)) for picture in (a, b)],
        source=prepare_image(a, max_side=SIZE),
    )


def _png(picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    return buffer.getvalue()


def main() -> None:
    a, b = photos()
    wipe = Wipe(a, b)
    ours = measure(wipe.jpeg)
    naive = measure(lambda position: naive_png(a, b, position))
    print(f"A/B wipe update at {SIZE}x{SIZE}, {len(POSITIONS)} positions (same run):")
    print(f"{'':34}{'median ms':>10}{'p95 ms':>9}{'bytes/update':>14}")
    for name, (median, p95, size) in (
        ("explorer (numpy + JPEG q90 4:4:4)", ours),
        ("naive (Pillow + full PNG)", naive),
    ):
        print(f"{name:34}{median:>10.1f}{p95:>9.1f}{size:>14,.0f}")
    print(
        f"explorer vs naive: {naive[0] / ours[0]:.1f}x less kernel time, "
        f"{naive[2] / ours[2]:.1f}x fewer bytes per update; target under 50 ms: "
        f"{'met' if ours[0] < 50 else 'NOT met'}"
    )
    explorer = ii.VariationExplorer(response_of(a, b))
    start = time.perf_counter()
    explorer.inspect("1.2")
    inspect_ms = (time.perf_counter() - start) * 1000
    start = time.perf_counter()
    _png(b)
    encode_ms = (time.perf_counter() - start) * 1000
    print(
        f"\nInspect (click) at {SIZE} px: {inspect_ms:.1f} ms in the kernel, sending "
        f"{len(explorer.inspected.value):,} bytes of PNG (the backend's own bytes); "
        f"encoding that PNG afresh would take {encode_ms:.1f} ms"
    )
    thumbs = sum(len(explorer._cells[label].thumb.value) for label in ("1.1", "1.2"))
    fulls = len(_png(a)) + len(_png(b))
    print(
        f"Opening an explorer of two {SIZE} px images: thumbnails {thumbs:,} bytes "
        f"({explorer.thumb_size} px, {explorer._cells['1.1'].thumb.format}), "
        f"full PNGs {fulls:,} bytes ({fulls / thumbs:.0f}x more)"
    )
    frames, total, lag = drag(a, b)
    print(
        f"\nDrag of {DRAG_EVENTS} slider events at {DRAG_HZ} Hz through VariationExplorer:\n"
        f"  explorer: {frames} frames sent, {total / 1e6:.1f} MB, "
        f"last position shown {lag:.0f} ms after the last event\n"
        f"  one naive PNG per event: {DRAG_EVENTS} frames, "
        f"{DRAG_EVENTS * naive[2] / 1e6:.1f} MB, "
        f"{DRAG_EVENTS * naive[0] / 1000:.1f} s of kernel time"
    )


if __name__ == "__main__":
    main()
