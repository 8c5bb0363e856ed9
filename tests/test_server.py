"""The OpenAI-compatible server, called over real HTTP on 127.0.0.1.

Foreign clients (the official `openai` package, plain httpx) and our own client talk to
a uvicorn server running `create_app` in a background thread; every body is checked
against the shared JSON schema (tests/spec.py).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import spec
import uvicorn
from PIL import Image, ImageDraw

import ipy_images as ii
from ipy_images.server import create_app

TOKEN = "sk-" + "class-token-7f3e9a1c5b"
WRONG = "sk-" + "wrong-token-0123456789zz"
MB = 1024 * 1024

# The legacy endpoint is marked deprecated in the openai package; calling it is the point.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@contextlib.contextmanager
def running(**options: Any) -> Iterator[str]:
    """A real uvicorn server on a free loopback port; yields its root URL."""
    sock = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(**options), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join()


@pytest.fixture(scope="module")
def root() -> Iterator[str]:
    """One token-protected server shared by the tests of this module."""
    with running(api_key=TOKEN) as url:
        yield url


@pytest.fixture
def base_url(root: str) -> str:
    return f"{root}/v1"


def picture(width: int, height: int, mode: str = "RGB") -> Image.Image:
    """A small picture with structure (stripes and a disc), so variations have patches."""
    image = Image.new("RGB", (width, height), (235, 225, 200))
    draw = ImageDraw.Draw(image)
    for x in range(0, width, max(4, width // 8)):
        draw.rectangle((x, 0, x + max(2, width // 16), height), fill=(40, 90, 160))
    draw.ellipse((width // 4, height // 4, 3 * width // 4, 3 * height // 4), fill=(200, 60, 40))
    return image.convert(mode)


def png(width: int = 64, height: int = 64, mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    picture(width, height, mode).save(buffer, format="PNG")
    return buffer.getvalue()


def noise_png(min_bytes: int) -> bytes:
    """A PNG of random pixels at least `min_bytes` long (noise does not compress)."""
    side = int((min_bytes / 3) ** 0.5) + 16
    raw = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    buffer = io.BytesIO()
    raw.save(buffer, format="PNG", compress_level=0)
    assert len(buffer.getvalue()) >= min_bytes
    return buffer.getvalue()


def post(base_url: str, files: Any = None, data: Any = None, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {TOKEN}", **kwargs.pop("headers", {})}
    return httpx.post(
        f"{base_url}/images/variations",
        files=files,
        data=data,
        headers=headers,
        timeout=120,
        **kwargs,
    )


def error_of(answer: httpx.Response, status: int) -> dict[str, Any]:
    """The error object of an answer, after checking its status and schema."""
    assert answer.status_code == status, answer.text
    body = answer.json()
    spec.validate_error_response(body)
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def decoded(content: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(content))
    image.load()
    return image


# --- the official openai package as a foreign client -------------------------------------


def openai_client(base_url: str, key: str = TOKEN) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key=key, max_retries=0)


def test_openai_client_gets_b64_json_variations(base_url: str) -> None:
    result = openai_client(base_url).images.create_variation(
        image=("square.png", png(96, 96)), n=2, size="256x256", response_format="b64_json"
    )
    body = result.model_dump(exclude_none=True)
    spec.validate_images_response(body)
    assert len(result.data) == 2
    pictures = [decoded(base64.b64decode(item.b64_json or "")) for item in result.data]
    assert [p.size for p in pictures] == [(256, 256), (256, 256)]
    assert pictures[0].tobytes() != pictures[1].tobytes()  # two different variations


def test_openai_client_gets_a_url_it_can_download(base_url: str, tmp_path: Path) -> None:
    upload = tmp_path / "upload.png"
    upload.write_bytes(png(64, 64))
    with upload.open("rb") as file:  # a real file, as in OpenAI's own examples
        result = openai_client(base_url).images.create_variation(
            image=file, n=1, size="256x256"
        )  # no response_format: the legacy default is "url"
    spec.validate_images_response(result.model_dump(exclude_none=True))
    (item,) = result.data
    assert item.b64_json is None and item.url is not None
    assert item.url.startswith(base_url)
    download = httpx.get(item.url)  # no key needed: the URL itself is the secret
    assert download.status_code == 200
    assert download.headers["content-type"] == "image/png"
    assert decoded(download.content).size == (256, 256)


def test_openai_client_gets_bad_request_for_a_non_square_image(base_url: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client(base_url).images.create_variation(image=("wide.png", png(120, 80)), n=1)
    assert caught.value.status_code == 400
    spec.validate_error_response({"error": caught.value.body})
    assert caught.value.body["param"] == "image"
    assert caught.value.body["message"] == (
        "Uploaded image must be square; this one is 120x80 pixels."
    )


def test_openai_client_with_a_wrong_key_is_refused_without_echoing_it(base_url: str) -> None:
    with pytest.raises(openai.AuthenticationError) as caught:
        openai_client(base_url, WRONG).images.create_variation(image=("a.png", png()), n=1)
    assert caught.value.status_code == 401
    assert caught.value.body["code"] == "invalid_api_key"
    assert WRONG not in str(caught.value) and WRONG[:-4] not in str(caught.value.body)
    assert caught.value.body["message"] == "Incorrect API key provided: sk-...89zz."


# --- our own client through base_url -----------------------------------------------------


def test_our_client_through_base_url_b64_and_url() -> None:
    with running(api_key=TOKEN) as root:
        with ii.VariationClient(
            backend="variations", base_url=f"{root}/v1", api_key=TOKEN, max_retries=0
        ) as client:
            arrived: list[int] = []
            by_url = client.create_variation(
                picture(80, 80),
                n=2,
                size="256x256",
                response_format="url",
                on_image=lambda index, _: arrived.append(index),
            )
            inline = client.create_variation(picture(80, 80), n=1, size="256x256")
        health = httpx.get(f"{root}/health").json()
    assert sorted(arrived) == [0, 1]
    assert [image.size for image in by_url.images] == [(256, 256)] * 2
    assert all(item.url and item.url.startswith(root) for item in by_url.data)
    spec.validate_images_response(by_url.to_dict())
    spec.validate_images_response(inline.to_dict())
    assert inline.data[0].b64_json and inline.images[0].size == (256, 256)
    assert health["stored_images"] == 2  # the two URL results, kept for their hour


def test_our_client_gets_typed_errors_from_the_server(base_url: str) -> None:
    with (
        ii.VariationClient(
            backend="variations", base_url=base_url, api_key=TOKEN, max_retries=0
        ) as client,
        pytest.raises(ii.BadRequestError) as bad,
    ):
        client.create_variation(picture(64, 64), n=1, size="256x256", model="dall-e-3")
    assert bad.value.param == "model" and bad.value.code == "invalid_value"
    with (
        ii.VariationClient(
            backend="variations", base_url=base_url, api_key=WRONG, max_retries=0
        ) as client,
        pytest.raises(ii.AuthenticationError) as denied,
    ):
        client.create_variation(picture(64, 64), n=1, size="256x256")
    assert WRONG not in str(denied.value)


# --- validation: every bad input gets a 400 error body naming the parameter --------------


def jpeg() -> bytes:
    buffer = io.BytesIO()
    picture(64, 64).save(buffer, format="JPEG")
    return buffer.getvalue()


BAD_REQUESTS = {
    "jpeg": ({"image": ("a.png", jpeg(), "image/png")}, {}, "image", "must be a PNG"),
    "not an image": ({"image": ("a.png", b"hello", "image/png")}, {}, "image", "must be a PNG"),
    "non-square": ({"image": ("a.png", png(64, 48))}, {}, "image", "must be square"),
    "damaged png": (
        {"image": ("a.png", png()[:60])},
        {},
        "image",
        "truncated or damaged",
    ),
    "too small": ({"image": ("a.png", png(8, 8))}, {}, "image", "too small"),
    "n zero": ({"image": ("a.png", png())}, {"n": "0"}, "n", "between 1 and 10"),
    "n eleven": ({"image": ("a.png", png())}, {"n": "11"}, "n", "between 1 and 10"),
    "n text": ({"image": ("a.png", png())}, {"n": "two"}, "n", "expected an integer"),
    "size": ({"image": ("a.png", png())}, {"size": "100x100"}, "size", "'256x256'"),
    "response_format": (
        {"image": ("a.png", png())},
        {"response_format": "xml"},
        "response_format",
        "'b64_json'",
    ),
    "model": ({"image": ("a.png", png())}, {"model": "dall-e-3"}, "model", "'dall-e-2'"),
    "unknown": ({"image": ("a.png", png())}, {"style": "vivid"}, "style", "Unknown parameter"),
    "no image": ({"other": ("a.png", png())}, {}, "other", "Unknown parameter"),
    "missing image": (None, {"n": "1"}, "image", "Missing required parameter"),
}


@pytest.mark.parametrize("n", [" 2 ", "1_0", "\u0663", "+2", "2.0"])
def test_n_takes_ascii_digits_only(base_url: str, n: str) -> None:
    """int() reads ' 2 ', '1_0' (ten) and Arabic-Indic digits; the contract does not."""
    answer = post(base_url, files={"image": ("a.png", png())}, data={"n": n, "size": "256x256"})
    error = error_of(answer, 400)
    assert (error["param"], error["code"]) == ("n", "invalid_type")
    assert f"got '{n}'" in error["message"]


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=list(BAD_REQUESTS))
def test_bad_requests_are_refused_with_400_naming_the_parameter(base_url: str, case: str) -> None:
    files, data, param, message = BAD_REQUESTS[case]
    if files is None:  # a multipart form with only text fields
        files = {"n": (None, "1")}
    error = error_of(post(base_url, files=files, data=data), 400)
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert message in error["message"]


def test_an_image_of_4_mb_or_more_is_refused(base_url: str) -> None:
    large = noise_png(4 * MB)
    assert error_of(post(base_url, files={"image": ("big.png", large)}), 400) == TOO_LARGE


def test_an_image_given_as_text_is_refused(base_url: str) -> None:
    error = error_of(post(base_url, files={"image": (None, "cat.png")}), 400)
    assert (error["param"], error["code"]) == ("image", "invalid_type")


TOO_LARGE = {
    "message": "Uploaded image must be a PNG and less than 4 MB.",
    "type": "invalid_request_error",
    "param": "image",
    "code": None,
}


def test_every_too_large_image_gets_the_same_400_even_over_the_body_cap(base_url: str) -> None:
    """4-5 MB and above the 5 MB body cap, with or without Content-Length: one answer."""
    over_the_cap = noise_png(6 * MB)
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client(base_url).images.create_variation(image=("big.png", over_the_cap), n=1)
    assert caught.value.body == TOO_LARGE

    def chunks() -> Iterator[bytes]:  # a generator body goes out chunked, with no length
        head = b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n'
        yield head + over_the_cap[:MB]
        for start in range(MB, len(over_the_cap), MB):
            yield over_the_cap[start : start + MB]

    headers = {"content-type": "multipart/form-data; boundary=b"}
    assert error_of(post(base_url, content=chunks(), headers=headers), 400) == TOO_LARGE
    garbage = post(base_url, content=b"x" * (5 * MB + 1), headers=headers)
    assert error_of(garbage, 400) == TOO_LARGE


GARBAGE = {
    "not multipart": ("application/json", b'{"image": "cat.png"}'),
    "no boundary": ("multipart/form-data", b"--x\r\n\r\n"),
    "wrong boundary": ("multipart/form-data; boundary=abc", b"garbage\x00\xff" * 100),
    "truncated": (
        "multipart/form-data; boundary=abc",
        b'--abc\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n'
        + png()[:40],
    ),
    "empty": ("multipart/form-data; boundary=abc", b""),
}


@pytest.mark.parametrize("case", GARBAGE, ids=list(GARBAGE))
def test_garbage_bodies_get_400_not_500(base_url: str, case: str) -> None:
    content_type, body = GARBAGE[case]
    answer = post(base_url, content=body, headers={"content-type": content_type})
    assert error_of(answer, 400)["type"] == "invalid_request_error"


def test_missing_bearer_gets_401(base_url: str) -> None:
    answer = httpx.post(f"{base_url}/images/variations", files={"image": ("a.png", png())})
    error = error_of(answer, 401)
    assert error["code"] == "invalid_api_key"
    assert "didn't provide an API key" in error["message"]


def test_a_short_wrong_key_is_not_echoed_at_all(base_url: str) -> None:
    answer = post(
        base_url, files={"image": ("a.png", png())}, headers={"Authorization": "Bearer abc"}
    )
    assert error_of(answer, 401)["message"] == "Incorrect API key provided: ***."


def test_unknown_paths_and_methods_get_error_bodies(root: str) -> None:
    assert (
        "Invalid URL (GET /v1/models)" in error_of(httpx.get(f"{root}/v1/models"), 404)["message"]
    )
    error_of(httpx.get(f"{root}/v1/images/variations"), 405)
    unknown = error_of(httpx.get(f"{root}/v1/files/not-a-token.png"), 404)
    assert unknown["code"] == "url_expired"


def test_health(root: str) -> None:
    answer = httpx.get(f"{root}/health")
    assert answer.status_code == 200
    assert answer.json()["status"] == "ok"


# --- limits over time: saturation and URL expiry -----------------------------------------


def test_a_saturated_server_answers_429_with_retry_after() -> None:
    with running(max_concurrent=1, max_queue=0) as root:

        async def scenario() -> tuple[httpx.Response, list[httpx.Response]]:
            async with httpx.AsyncClient(base_url=f"{root}/v1", timeout=120) as http:
                form = {"n": "2", "size": "256x256", "response_format": "b64_json"}
                first = asyncio.ensure_future(
                    http.post("/images/variations", files={"image": ("a.png", png())}, data=form)
                )
                # Wait until the first request holds the only slot, then fire two more.
                while (await http.get(f"{root}/health")).json()["in_flight"] == 0:
                    await asyncio.sleep(0.02)
                others = await asyncio.gather(
                    *(
                        http.post("/images/variations", files={"image": ("a.png", png())})
                        for _ in range(2)
                    )
                )
                return await first, list(others)

        first, others = asyncio.run(scenario())
    assert first.status_code == 200
    spec.validate_images_response(first.json())
    for answer in others:
        error = error_of(answer, 429)
        assert error["type"] == error["code"] == "rate_limit_exceeded"
        assert int(answer.headers["retry-after"]) >= 1


def test_retry_after_gives_the_queue_ahead_time_to_drain() -> None:
    """One worker, four waiting: a refused client must not come back before all five ran.

    With one generation's time the refused would come back to a queue still full, and the
    official SDK's two retries run out (issue 14: 6 of 20 clients failed).
    """
    with running(max_concurrent=1, max_queue=4) as root:

        async def scenario() -> tuple[float, httpx.Response]:
            async with httpx.AsyncClient(base_url=f"{root}/v1", timeout=300) as http:
                form = {"n": "1", "size": "256x256", "response_format": "b64_json"}
                files = {"image": ("a.png", png())}
                started = time.perf_counter()  # the reference: one generation, alone
                assert (await http.post("/images/variations", files=files, data=form)).is_success
                one = time.perf_counter() - started
                queue = [
                    asyncio.ensure_future(http.post("/images/variations", files=files, data=form))
                    for _ in range(5)
                ]
                while (await http.get(f"{root}/health")).json()["in_flight"] < 5:
                    await asyncio.sleep(0.02)
                refused = await http.post("/images/variations", files=files, data=form)
                for request in queue:
                    request.cancel()  # hung up: the server drops them without generating
                await asyncio.gather(*queue, return_exceptions=True)
                return one, refused

        one, refused = asyncio.run(scenario())
    error_of(refused, 429)
    wait = int(refused.headers["retry-after"])
    # Five generations ahead, one at a time; 60 s is the most the SDK waits as told.
    assert min(60, 0.8 * 5 * one) <= wait <= 60, f"Retry-After {wait} s, one generation {one:.1f} s"


def test_a_client_that_hangs_up_frees_its_generation() -> None:
    with running(max_concurrent=1, max_queue=0) as root:

        async def scenario() -> dict[str, Any]:
            async with httpx.AsyncClient(base_url=root, timeout=300) as http:
                form = {"n": "10", "size": "1024x1024", "response_format": "b64_json"}
                files = {"image": ("a.png", png())}
                request = asyncio.ensure_future(
                    http.post("/v1/images/variations", files=files, data=form)
                )
                while (await http.get("/health")).json()["in_flight"] == 0:
                    await asyncio.sleep(0.02)
                request.cancel()  # the connection closes, as when a user presses Ctrl-C
                while (health := (await http.get("/health")).json())["in_flight"]:
                    await asyncio.sleep(0.05)
                return health

        health = asyncio.run(scenario())
    assert health["abandoned"] == 1  # cancelled, not run to the end for nobody


def test_result_urls_expire() -> None:
    with running(url_ttl=0.5) as root:
        answer = post(f"{root}/v1", files={"image": ("a.png", png())}, data={"size": "256x256"})
        assert answer.status_code == 200, answer.text
        url = answer.json()["data"][0]["url"]
        assert httpx.get(url).status_code == 200
        time.sleep(0.6)
        expired = error_of(httpx.get(url), 404)
    assert expired["code"] == "url_expired"
    assert "expired" in expired["message"]


# --- the %%variation magic, through IPython, against this server --------------------------


def test_the_magic_reaches_the_server(
    base_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    monkeypatch.setenv("OPENAI_API_KEY", TOKEN)  # the magic reads keys only from the environment
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "ipy_images")
    source = tmp_path / "square.png"
    source.write_bytes(png(64, 64))
    shell.run_cell_magic(
        "variation",
        f"-n 1 --size 256x256 --response-format url --backend variations "
        f"--base-url {base_url} -o result",
        str(source),
    )
    result = shell.user_ns["result"]
    assert isinstance(result, ii.ImagesResponse)
    spec.validate_images_response(result.to_dict())
    (item,) = result.data
    assert item.url is not None and item.url.startswith(base_url)
    assert item.image.size == (256, 256)
