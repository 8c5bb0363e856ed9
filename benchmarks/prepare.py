"""Time and output size of preparing a 4000x3000 JPEG photo for the variations contract.

Target: at most 0.5 s, PNG under 4 MB. The photo is scikit-image's `astronaut`,
upscaled to 4000x3000 with a little sensor-like noise so it compresses like a real photo.
Run: python benchmarks/prepare.py [--runs 5]
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

import numpy as np
from PIL import Image


def camera_photo() -> bytes:
    """A 4000x3000 JPEG at quality 92, like a phone camera's output."""
    from skimage import data

    photo = Image.fromarray(data.astronaut()).resize((4000, 3000), Image.Resampling.BICUBIC)
    noise = np.random.default_rng(0).normal(0, 4, (3000, 4000, 3))
    pixels = np.clip(np.asarray(photo, dtype=np.float32) + noise, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    from ipy_images import prepare_image

    jpeg = camera_photo()
    times, prepared = [], None
    for _ in range(runs):
        start = time.perf_counter()
        prepared = prepare_image(jpeg)
        times.append(time.perf_counter() - start)
    assert prepared is not None
    print(f"input   4000x3000 JPEG, {len(jpeg) / 1e6:.2f} MB")
    print(
        f"output  {prepared.image.width}x{prepared.image.height} PNG, "
        f"{len(prepared.png) / 1e6:.2f} MB  (limit 4 MB)"
    )
    print(
        f"time    median {statistics.median(times):.3f} s, best {min(times):.3f} s over "
        f"{runs} runs  (target <= 0.5 s)"
    )


if __name__ == "__main__":
    main()
