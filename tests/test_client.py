"""The client and the `variations` backend against a real misbehaving server on 127.0.0.1.

Every test goes through the real client and httpx to `tests/loopback.py`. Each request the
server received is checked against the variations contract and each parsed response
against the `ImagesResponse` schema (see `check_contract`).
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import spec
from loopback import TINTS, Fault, LoopbackServer, png_bytes
from PIL import Image
from test_sources import encoded, noise, png_header

import ipy_images
from ipy_images import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AsyncVariationClient,
    AuthenticationError,
    BadRequestError,
    ImageData,
    ImagesResponse,
    InternalServerError,
    InvalidImageError,
    InvalidParameterError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    VariationClient,
)

KEY = "sk-" + "test-client-SENTINEL-0a1b2c3d4e5f"
RED = (200, 80, 40)
SQUARE = png_bytes((64, 64), RED)
SIZE = "256x256"
REQUEST_ID = re.compile(r"^req_[0-9a-f]{24}$")
TESTS = Path(__file__).resolve().parent


def client(server: LoopbackServer, **options: Any) -> AsyncVariationClient:
    settings = {"api_key": KEY, "timeout": 10.0, "max_retries": 2, **options}
    return AsyncVariationClient(backend="variations", base_url=server.base_url, **settings)


def make(
    server: LoopbackServer,
    image: Any = SQUARE,
    *,
    client_options: dict[str, Any] | None = None,
    **request: Any,
) -> ImagesResponse:
    """Variations from `server` through the async client, run to completion."""
    request = {"n": 2, "size": SIZE, **request}

    async def run() -> ImagesResponse:
        async with client(server, **(client_options or {})) as c:
            return await c.create_variation(image, **request)

    return asyncio.run(run())


def fails(server: LoopbackServer, error: type[BaseException], *args: Any, **kwargs: Any) -> Any:
    """The error `make(server, *args, **kwargs)` raises, which must be an `error`."""
    with pytest.raises(error) as info:
        make(server, *args, **kwargs)
    return info.value


def check_contract(server: LoopbackServer, *responses: ImagesResponse | None) -> None:
    """Every request the server saw speaks the contract; every response fits the schema."""
    for request in server.requests:
        assert request.path == "/v1/images/variations"
        spec.validate_variation_request(request.form)
        part = request.file("image")
        assert part is not None
        assert part.content_type == "image/png"
        assert part.filename.endswith(".png")
        image = part.image
        assert image.width == image.height
        assert image.mode in ("RGB", "RGBA")
        assert len(part.data) < 4 * 1024 * 1024
    for response in responses:
        if response is not None:
            spec.validate_images_response(response.to_dict())
            assert all(item.content for item in response.data)


def check_tints(response: ImagesResponse, indices: range | list[int]) -> None:
    """Image `i` of a batch is tinted with TINTS[i]: results are the ones asked, in order."""
    for item, index in zip(response.data, indices, strict=True):
        expected = TINTS[index % 10]
        pixel = item.image.convert("RGB").getpixel((5, 5))
        # The loopback blends the input (RED) with the tint at 35 %.
        blended = tuple(round(0.65 * r + 0.35 * t) for r, t in zip(RED, expected, strict=True))
        assert max(abs(a - b) for a, b in zip(pixel, blended, strict=True)) <= 2


# -- the contract ------------------------------------------------------------------------------


def test_request_follows_the_contract(loopback: LoopbackServer) -> None:
    response = make(loopback, n=3, user="teacher-7")

    (request,) = loopback.requests
    assert request.fields == {
        "n": "3",
        "size": SIZE,
        "response_format": "b64_json",
        "user": "teacher-7",
    }
    part = request.file("image")
    assert part is not None
    assert (part.name, part.filename, part.content_type) == ("image", "image.png", "image/png")
    assert request.authorization == f"Bearer {KEY}"
    assert request.headers["user-agent"].startswith(f"ipy-images/{ipy_images.__version__} ")
    check_contract(loopback, response)

    assert response.backend == "variations"
    assert len(response.data) == 3
    assert [image.size for image in response.images] == [(256, 256)] * 3
    check_tints(response, range(3))
    assert response.source is not None
    assert response.source.sha256 == hashlib.sha256(part.data).hexdigest()
    assert response.request is not None
    assert (response.request.n, response.request.size) == (3, SIZE)


def test_default_size_and_model(loopback: LoopbackServer) -> None:
    response = make(loopback, n=1, size=None, model="dall-e-2")

    (request,) = loopback.requests
    assert (request.fields["size"], request.fields["model"]) == ("1024x1024", "dall-e-2")
    assert response.images[0].size == (1024, 1024)
    check_contract(loopback, response)


def test_client_model_is_the_default_model(loopback: LoopbackServer) -> None:
    make(loopback, n=1, client_options={"model": "my-gateway-model"})
    assert loopback.requests[0].fields["model"] == "my-gateway-model"


def test_upload_is_named_after_the_source_and_made_square(
    loopback: LoopbackServer, tmp_path: Path
) -> None:
    path = tmp_path / "holiday.jpg"
    Image.new("RGB", (120, 80), RED).save(path, format="JPEG")

    response = make(loopback, path, n=1)
    part = loopback.requests[0].file("image")
    assert part is not None
    assert (part.filename, part.image.size) == ("holiday.png", (80, 80))
    assert response.source is not None
    assert response.source.name == "holiday.jpg"
    check_contract(loopback, response)


def test_any_source_kind_is_uploaded(loopback: LoopbackServer) -> None:
    array = np.zeros((48, 48, 4), np.uint8)
    array[8:40, 8:40] = (*RED, 255)

    response = make(loopback, array, n=1)
    part = loopback.requests[0].file("image")
    assert part is not None
    assert part.image.mode == "RGBA"
    assert (part.filename, response.source.name if response.source else None) == (
        "array.png",
        "array.png",
    )
    check_contract(loopback, response)


def test_no_key_sends_no_authorization(
    loopback: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    make(loopback, n=1, client_options={"api_key": None})
    assert loopback.requests[0].authorization is None


# -- retries -----------------------------------------------------------------------------------

RECOVERABLE = {
    "429-retry-after-ms": Fault.status(429, retry_after_ms=20),
    "500": Fault.status(500, retry_after_ms=20),
    "503": Fault.status(503, retry_after_ms=20),
    "502-html": Fault.status(502, body="<html>Bad gateway</html>", retry_after_ms=20),
    "408": Fault.status(408, retry_after_ms=20),
    "409": Fault.status(409, retry_after_ms=20),
    "400-x-should-retry": Fault.x_should_retry(400, "true"),
    "dropped-connection": Fault.drop(),
    "dropped-mid-body": Fault.drop_mid_body(),
    "malformed-json": Fault.malformed_json(),
    "truncated-json": Fault.truncated_json(),
    "truncated-base64": Fault.bad_base64(index=1),
    "not-an-image": Fault.not_an_image(index=0),
    "slower-than-timeout": Fault.delay(2.0),
    "body-slower-than-timeout": Fault.slow_body(2.0, pieces=20),
}


@pytest.mark.parametrize("fault", RECOVERABLE.values(), ids=RECOVERABLE.keys())
def test_recovers_after_a_retry(loopback: LoopbackServer, fault: Fault) -> None:
    loopback.enqueue(fault)

    response = make(loopback, client_options={"timeout": 1.0, "max_retries": 1})
    assert len(loopback.requests) == 2
    assert loopback.faults_pending == 0
    assert len(response.data) == 2
    check_tints(response, range(2))
    check_contract(loopback, response)


EXHAUSTED = {
    "500": (Fault.status(500, retry_after_ms=10), InternalServerError, 500),
    "503": (Fault.status(503, retry_after_ms=10), InternalServerError, 503),
    "429": (Fault.status(429, retry_after_ms=10), RateLimitError, 429),
    "dropped": (Fault.drop(), APIConnectionError, None),
    "malformed-json": (Fault.malformed_json(), APIConnectionError, None),
    "truncated-base64": (Fault.bad_base64(), APIConnectionError, None),
    "slow": (Fault.delay(2.0), APITimeoutError, None),
}


@pytest.mark.parametrize(("fault", "error", "status"), EXHAUSTED.values(), ids=EXHAUSTED.keys())
def test_gives_up_after_max_retries(
    loopback: LoopbackServer, fault: Fault, error: type[APIError], status: int | None
) -> None:
    loopback.enqueue(fault, fault, fault)

    exc = fails(loopback, error, client_options={"timeout": 1.0, "max_retries": 2})
    assert len(loopback.requests) == 3
    assert loopback.faults_pending == 0
    assert exc.partial is None
    assert "\n" not in str(exc)
    if status is None:
        assert not isinstance(exc, APIStatusError)
        assert error is APITimeoutError or not isinstance(exc, APITimeoutError)
    else:
        assert exc.status_code == status
        assert REQUEST_ID.match(exc.request_id)
    check_contract(loopback)


def test_max_retries_zero_sends_once(loopback: LoopbackServer) -> None:
    loopback.enqueue(Fault.status(503, retry_after_ms=10))

    exc = fails(loopback, InternalServerError, client_options={"max_retries": 0})
    assert len(loopback.requests) == 1
    assert exc.type == "server_error"


NOT_RETRIED = {
    "400": (400, BadRequestError),
    "401": (401, AuthenticationError),
    "403": (403, PermissionDeniedError),
    "404": (404, NotFoundError),
    "422": (422, APIStatusError),
}


@pytest.mark.parametrize(("status", "error"), NOT_RETRIED.values(), ids=NOT_RETRIED.keys())
def test_client_errors_are_not_retried(
    loopback: LoopbackServer, status: int, error: type[APIStatusError]
) -> None:
    loopback.enqueue(Fault.status(status, message="Refused.", error_code="some_code"))

    exc = fails(loopback, error)
    assert type(exc) is error
    assert len(loopback.requests) == 1
    assert (exc.status_code, exc.message, exc.code) == (status, "Refused.", "some_code")
    assert REQUEST_ID.match(exc.request_id)


def test_x_should_retry_false_stops_retries(loopback: LoopbackServer) -> None:
    loopback.enqueue(Fault.x_should_retry(503, "false"))

    fails(loopback, InternalServerError)
    assert len(loopback.requests) == 1


def test_server_validation_error_is_one_typed_line(loopback: LoopbackServer) -> None:
    loopback.enqueue(Fault.status(400, message="Uploaded image must be square.", param="image"))

    exc = fails(loopback, BadRequestError)
    assert str(exc) == "400 invalid_request_error (param: image): Uploaded image must be square."
    assert (exc.type, exc.param, exc.code) == ("invalid_request_error", "image", None)


def timed(action: Callable[[], Any]) -> float:
    start = time.monotonic()
    action()
    return time.monotonic() - start


def test_retry_after_seconds_is_honoured(loopback: LoopbackServer) -> None:
    loopback.enqueue(Fault.status(429, retry_after="1"))

    waited = timed(lambda: make(loopback))
    assert len(loopback.requests) == 2
    assert waited >= 0.95


def test_retry_after_http_date_is_honoured(loopback: LoopbackServer) -> None:
    start = time.monotonic()
    # HTTP dates have whole seconds: two seconds ahead is at least one second away.
    loopback.enqueue(
        Fault.status(503, retry_after=email.utils.formatdate(time.time() + 2, usegmt=True))
    )

    make(loopback)
    assert len(loopback.requests) == 2
    assert time.monotonic() - start > 0.95


@pytest.mark.parametrize(
    "fault",
    [
        Fault.status(429, retry_after="3600"),
        Fault.status(429, retry_after_ms=20, retry_after="3600"),
        Fault.status(503, retry_after="Wed, 21 Oct 2099 07:28:00 GMT"),
    ],
    ids=["beyond-cap", "ms-first", "date-beyond-cap"],
)
def test_retry_delays_beyond_the_cap_are_not_waited_for(
    loopback: LoopbackServer, fault: Fault
) -> None:
    loopback.enqueue(fault)

    async def run() -> ImagesResponse:
        async with client(loopback) as c:
            # Honouring an hour-long delay would end here, as a failure.
            return await asyncio.wait_for(c.create_variation(SQUARE, n=1, size=SIZE), 30)

    assert len(asyncio.run(run()).data) == 1
    assert len(loopback.requests) == 2


# -- fan-out and partial results -----------------------------------------------------------------


def test_n_above_ten_fans_out(loopback: LoopbackServer) -> None:
    arrived: list[int] = []

    response = make(loopback, n=23, on_image=lambda i, _: arrived.append(i))
    assert sorted(request.fields["n"] for request in loopback.requests) == ["10", "10", "3"]
    assert len(response.data) == 23
    assert sorted(arrived) == list(range(23))
    check_tints(response, [*range(10), *range(10), *range(3)])
    check_contract(loopback, response)


def test_fan_out_is_bounded_by_max_concurrency(loopback: LoopbackServer) -> None:
    loopback.latency = 0.3
    peak = 0
    done = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, loopback.open_connections)
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        response = make(loopback, n=50, client_options={"max_concurrency": 2})
    finally:
        done.set()
        watcher.join()
    assert len(loopback.requests) == 5
    assert len(response.data) == 50
    assert peak == 2


def test_second_batch_failing_keeps_the_first(loopback: LoopbackServer) -> None:
    arrived: dict[int, ImageData] = {}
    loopback.enqueue(Fault.delay(0), Fault.status(500, retry_after_ms=10))

    exc = fails(
        loopback,
        InternalServerError,
        n=20,
        on_image=arrived.__setitem__,
        client_options={"max_concurrency": 1, "max_retries": 0},
    )
    assert len(loopback.requests) == 2
    assert exc.partial is not None
    assert len(exc.partial.data) == 10
    assert sorted(arrived) == list(range(10))
    assert [arrived[i] for i in range(10)] == exc.partial.data
    check_tints(exc.partial, range(10))
    assert exc.partial.backend == "variations"
    check_contract(loopback, exc.partial)


def test_first_batch_failing_keeps_the_rest(loopback: LoopbackServer) -> None:
    arrived: list[int] = []
    loopback.enqueue(Fault.status(503), Fault.status(503), Fault.status(503))

    exc = fails(
        loopback,
        InternalServerError,
        n=25,
        on_image=lambda i, _: arrived.append(i),
        client_options={"max_concurrency": 1, "max_retries": 2},
    )
    assert len(loopback.requests) == 5  # 3 attempts of the first batch, then two more
    assert exc.partial is not None
    assert len(exc.partial.data) == 15
    assert sorted(arrived) == list(range(10, 25))
    check_contract(loopback, exc.partial)


def test_partial_results_stay_in_index_order(loopback: LoopbackServer) -> None:
    # The middle batch loses one image to a contract breach; the other 24 are kept, in order.
    loopback.enqueue(Fault.delay(0), Fault.wrong_size(index=0))

    exc = fails(loopback, APIError, n=25, client_options={"max_concurrency": 1})
    assert len(loopback.requests) == 3
    assert exc.partial is not None
    check_tints(exc.partial, [*range(10), *range(1, 10), *range(5)])


def test_on_image_reports_the_kept_images_of_a_failed_batch(loopback: LoopbackServer) -> None:
    arrived: dict[int, ImageData] = {}
    loopback.enqueue(Fault.url_404(index=1))

    exc = fails(loopback, NotFoundError, n=3, response_format="url", on_image=arrived.__setitem__)
    assert exc.partial is not None
    assert sorted(arrived) == [0, 2]
    assert [arrived[0], arrived[2]] == exc.partial.data


def test_every_batch_failing_has_no_partial(loopback: LoopbackServer) -> None:
    loopback.enqueue(*[Fault.status(500, retry_after_ms=10)] * 2)

    exc = fails(loopback, InternalServerError, n=15, client_options={"max_retries": 0})
    assert exc.partial is None


def test_wrong_size_result_is_refused_with_the_rest_kept(loopback: LoopbackServer) -> None:
    loopback.enqueue(Fault.wrong_size(index=1))

    exc = fails(loopback, APIError, n=3)
    assert "128x128 image where 256x256 was asked" in str(exc)
    assert len(loopback.requests) == 1
    assert exc.partial is not None
    assert [image.size for image in exc.partial.images] == [(256, 256)] * 2
    check_tints(exc.partial, [0, 2])


# -- URL results -------------------------------------------------------------------------------


def test_url_results_are_downloaded_at_once(loopback: LoopbackServer) -> None:
    response = make(loopback, n=12, response_format="url")

    assert {r.fields["response_format"] for r in loopback.requests} == {"url"}
    urls = [item.url for item in response.data]
    assert all(url and url.startswith(loopback.url + "/files/") for url in urls)
    assert sorted(loopback.downloads) == sorted(url.removeprefix(loopback.url) for url in urls)
    assert [image.size for image in response.images] == [(256, 256)] * 12
    check_tints(response, [*range(10), *range(2)])
    check_contract(loopback, response)


def test_url_404_is_a_typed_error_with_the_rest_kept(loopback: LoopbackServer) -> None:
    loopback.enqueue(Fault.url_404(index=1))

    exc = fails(loopback, NotFoundError, n=3, response_format="url")
    assert exc.status_code == 404
    assert "could not be downloaded" in str(exc)
    assert len(loopback.downloads) == 3
    assert exc.partial is not None
    assert len(exc.partial.data) == 2
    check_tints(exc.partial, [0, 2])
    check_contract(loopback, exc.partial)


def test_url_that_never_ends_times_out_with_the_rest_kept(loopback: LoopbackServer) -> None:
    loopback.enqueue(Fault.url_never_ends(index=0))

    exc = fails(
        loopback,
        APITimeoutError,
        n=2,
        response_format="url",
        client_options={"timeout": 1.0, "max_retries": 0},
    )
    assert exc.partial is not None
    assert len(exc.partial.data) == 1
    check_tints(exc.partial, [1])


# -- on_image -----------------------------------------------------------------------------------


def test_on_image_fires_as_each_image_arrives(loopback: LoopbackServer) -> None:
    arrived: dict[int, ImageData] = {}
    requests_seen: dict[int, int] = {}

    def on_image(index: int, data: ImageData) -> None:
        assert index not in arrived
        arrived[index] = data
        requests_seen[index] = len(loopback.requests)

    response = make(loopback, n=14, on_image=on_image, client_options={"max_concurrency": 1})
    assert sorted(arrived) == list(range(14))
    for index, item in enumerate(response.data):
        assert arrived[index] == item
        assert arrived[index].content == item.content
    # The first ten were handed over before the second request was even sent.
    assert {requests_seen[i] for i in range(10)} == {1}


# -- cancellation and the sync forms ---------------------------------------------------------------


async def wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


def test_cancelling_aborts_in_flight_requests(loopback: LoopbackServer) -> None:
    # The server answers slowly, piece by piece, and notices when the client hangs up.
    loopback.enqueue(Fault.slow_body(30, pieces=300), Fault.slow_body(30, pieces=300))

    async def run() -> None:
        async with client(loopback, timeout=60.0) as c:
            task = asyncio.create_task(c.create_variation(SQUARE, n=20, size=SIZE))
            await wait_for(lambda: len(loopback.requests) == 2)
            await asyncio.sleep(0.3)
            assert loopback.open_connections == 2
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=10)
            assert task in done and task.cancelled()
            # Still inside the client: the connections were closed by the cancellation.
            await wait_for(lambda: loopback.open_connections == 0)

    asyncio.run(run())
    assert len(loopback.requests) == 2


def test_cancelling_during_server_latency(loopback: LoopbackServer) -> None:
    loopback.latency = 20

    async def run() -> None:
        async with client(loopback, timeout=60.0) as c:
            task = asyncio.create_task(c.create_variation(SQUARE, n=1, size=SIZE))
            await wait_for(lambda: len(loopback.requests) == 1)
            task.cancel()
            # Far less than the server's latency: the request was abandoned, not awaited.
            done, _ = await asyncio.wait({task}, timeout=5)
            assert task in done and task.cancelled()

    asyncio.run(run())


def sync_options(server: LoopbackServer) -> dict[str, Any]:
    return {
        "backend": "variations",
        "base_url": server.base_url,
        "api_key": KEY,
        "n": 2,
        "size": SIZE,
        "max_retries": 0,
    }


def test_create_variation_in_a_plain_script(loopback: LoopbackServer) -> None:
    response = ipy_images.create_variation(SQUARE, **sync_options(loopback))
    assert len(response.data) == 2
    check_contract(loopback, response)


def test_create_variation_inside_a_running_event_loop(loopback: LoopbackServer) -> None:
    async def cell() -> ImagesResponse:
        asyncio.get_running_loop()  # like a Jupyter cell: a loop is already running
        return ipy_images.create_variation(SQUARE, **sync_options(loopback))

    response = asyncio.run(cell())
    assert len(response.data) == 2
    check_contract(loopback, response)


def test_acreate_variation(loopback: LoopbackServer) -> None:
    response = asyncio.run(ipy_images.acreate_variation(SQUARE, **sync_options(loopback)))
    assert len(response.data) == 2


def test_sync_client_reuses_its_connection(loopback: LoopbackServer) -> None:
    with VariationClient("variations", KEY, loopback.base_url, max_retries=0) as sync_client:
        assert (
            repr(sync_client)
            == f"VariationClient(backend='variations', base_url='{loopback.base_url}')"
        )
        first = sync_client.create_variation(SQUARE, n=1, size=SIZE)
        second = sync_client.create_variation(SQUARE, n=1, size=SIZE, response_format="url")
        assert loopback.open_connections == 1
    assert len(first.data) == len(second.data) == 1
    check_contract(loopback, first, second)


def test_sync_errors_keep_their_type_and_partial(loopback: LoopbackServer) -> None:
    loopback.enqueue(Fault.delay(0), Fault.status(500))
    options = {**sync_options(loopback), "n": 12, "max_concurrency": 1}

    with pytest.raises(InternalServerError) as info:
        ipy_images.create_variation(SQUARE, **options)
    assert info.value.partial is not None
    assert len(info.value.partial.data) == 10


INTERRUPTED_SCRIPT = """
import sys
import ipy_images

try:
    ipy_images.create_variation(
        sys.argv[2], backend="variations", base_url=sys.argv[1], n=1, size="256x256",
        max_retries=0, timeout=60,
    )
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.stdin.readline()  # stay alive while the test looks at the server
    raise
"""


def test_ctrl_c_in_the_sync_form_cancels_the_request(
    loopback: LoopbackServer, tmp_path: Path
) -> None:
    source = tmp_path / "square.png"
    source.write_bytes(SQUARE)
    loopback.enqueue(Fault.slow_body(30, pieces=300))
    env = {**os.environ, "PYTHONPATH": str(TESTS.parent)}
    env.pop("OPENAI_API_KEY", None)
    process = subprocess.Popen(
        [sys.executable, "-c", INTERRUPTED_SCRIPT, loopback.base_url, str(source)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        asyncio.run(wait_for(lambda: len(loopback.requests) == 1, 30))
        asyncio.run(wait_for(lambda: loopback.open_connections == 1))
        process.send_signal(signal.SIGINT)
        assert process.stdout is not None and process.stdin is not None
        assert process.stdout.readline() == "interrupted\n"
        # The process is still alive, yet the server already saw the connection close.
        asyncio.run(wait_for(lambda: loopback.open_connections == 0))
        assert process.poll() is None
        process.stdin.write("\n")
        process.stdin.flush()
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode != 0
    assert stderr.rstrip().endswith("KeyboardInterrupt")


# -- bad input: refused before any request ---------------------------------------------------------


def _missing(tmp: Path) -> Any:
    return tmp / "missing.png"


def _directory(tmp: Path) -> Any:
    return tmp


def _empty(tmp: Path) -> Any:
    path = tmp / "empty.png"
    path.write_bytes(b"")
    return path


def _truncated(fmt: str) -> bytes:
    data = encoded(noise((64, 64)), fmt)
    return data[: len(data) // 2]


BAD_IMAGES: dict[str, tuple[Callable[[Path], Any], str]] = {
    "missing-file": (_missing, "no such file"),
    "directory": (_directory, "is a folder"),
    "zero-bytes": (_empty, r"is empty \(0 bytes\)"),
    "text": (lambda _: b"just some text\n", "this is text, not an image"),
    "pdf": (lambda _: b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n", "this is a PDF document"),
    "truncated-png": (lambda _: _truncated("PNG"), "the PNG data is truncated or damaged"),
    "truncated-jpeg": (lambda _: _truncated("JPEG"), "the JPEG data is truncated or damaged"),
    "bomb": (lambda _: png_header(100_000, 100_000), "decompression bomb"),
    "numpy-dtype": (lambda _: np.zeros((32, 32), np.int32), "dtype int32 are not supported"),
    "numpy-shape": (lambda _: np.zeros((32, 32, 5), np.uint8), "not shape"),
}


@pytest.mark.parametrize(("make_source", "message"), BAD_IMAGES.values(), ids=BAD_IMAGES.keys())
def test_bad_images_are_refused_before_sending(
    loopback: LoopbackServer, tmp_path: Path, make_source: Callable[[Path], Any], message: str
) -> None:
    with pytest.raises(InvalidImageError, match=message):
        make(loopback, make_source(tmp_path))
    assert len(loopback.requests) == 0


def test_non_square_under_strict_is_refused_before_sending(loopback: LoopbackServer) -> None:
    with pytest.raises(InvalidImageError, match="not square, and fit='strict' refuses it"):
        make(loopback, png_bytes((96, 64)), fit="strict")
    assert len(loopback.requests) == 0


@pytest.mark.parametrize(
    ("path", "message"),
    [("/files/gone.png", r"answered HTTP 404"), ("/health", "answered with application/json")],
    ids=["404", "not-an-image"],
)
def test_bad_urls_are_refused_before_sending(
    loopback: LoopbackServer, path: str, message: str
) -> None:
    with pytest.raises(InvalidImageError, match=message):
        make(loopback, loopback.url + path)
    assert len(loopback.requests) == 0


BAD_OPTIONS: dict[str, tuple[dict[str, Any], str]] = {
    "n-zero": ({"n": 0}, "n must be between 1 and"),
    "n-negative": ({"n": -3}, "n must be between 1 and"),
    "n-absurd": ({"n": 10_000_000}, "n must be between 1 and 10000"),
    "n-text": ({"n": "4"}, "n must be a whole number"),
    "n-float": ({"n": 2.0}, "n must be a whole number"),
    "n-bool": ({"n": True}, "n must be a whole number"),
    "size": ({"size": "300x300"}, "size='300x300' is not accepted by the variations backend"),
    "size-edits-only": ({"size": "1536x1024"}, "size='1536x1024' is not accepted"),
    "response-format": ({"response_format": "png"}, "response_format='png' is not accepted"),
    "fit": ({"fit": "stretch"}, "fit must be 'crop', 'pad' or 'strict'"),
    "prompt": ({"prompt": "a cat"}, "does not take prompt"),
    "seed": ({"seed": 7}, "does not take seed"),
    "quality": ({"quality": "high"}, "does not take quality"),
}


@pytest.mark.parametrize(("options", "message"), BAD_OPTIONS.values(), ids=BAD_OPTIONS.keys())
def test_bad_options_are_refused_before_sending(
    loopback: LoopbackServer, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        make(loopback, **options)
    assert len(loopback.requests) == 0


def test_build_request_validates_without_sending(loopback: LoopbackServer) -> None:
    c = client(loopback)
    request = c.build_request(n=3)
    assert (request.n, request.size, request.response_format) == (3, "1024x1024", "b64_json")
    with pytest.raises(InvalidParameterError):
        c.build_request(n=0)
    asyncio.run(c.aclose())
    assert len(loopback.requests) == 0


def test_bad_client_settings() -> None:
    with pytest.raises(InvalidParameterError, match="unknown backend 'dalle'"):
        AsyncVariationClient(backend="dalle")
    with pytest.raises(InvalidParameterError, match="base_url must start with http"):
        AsyncVariationClient(backend="variations", base_url="127.0.0.1:8000/v1")
    with pytest.raises(ValueError, match="max_concurrency must be at least 1"):
        AsyncVariationClient(
            backend="variations", base_url="http://127.0.0.1:1/v1", max_concurrency=0
        )


@pytest.fixture(autouse=True)
def _no_environment_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The developer's own OPENAI_* variables must not steer these tests."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "IPY_IMAGES_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    yield
