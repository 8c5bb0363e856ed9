"""The loopback server is itself a tool under test: contracts, faults, recording, shutdown.

Plain httpx against the real server; every JSON body it sends is checked against the spec.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import pytest
import spec
from loopback import TINT_WEIGHT, TINTS, Fault, LoopbackServer, png_bytes
from PIL import Image, UnidentifiedImageError

RED = (200, 80, 40)


def post(
    server: LoopbackServer,
    endpoint: str = "variations",
    *,
    upload: bytes | None = None,
    filename: str = "in.png",
    content_type: str = "image/png",
    files: list[tuple[str, tuple[str, bytes, str]]] | None = None,
    headers: dict[str, str] | None = None,
    timeout: float | None = 10.0,
    **fields: Any,
) -> httpx.Response:
    """POST a multipart form to an images endpoint; one image part unless ``files`` is given."""
    url = f"{server.base_url}/images/{endpoint}"
    data = {name: str(value) for name, value in fields.items()}
    if files is None:
        part = "image" if endpoint == "variations" else "image[]"
        files = [(part, (filename, png_bytes() if upload is None else upload, content_type))]
    if files:
        return httpx.post(url, files=files, data=data, headers=headers, timeout=timeout)
    # Without files httpx would send an urlencoded form; these tests need multipart anyway.
    boundary = "loopback-form"
    content = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in data.items()
    )
    multipart = {"content-type": f"multipart/form-data; boundary={boundary}"}
    return httpx.post(
        url,
        content=f"{content}--{boundary}--\r\n".encode(),
        headers={**(headers or {}), **multipart},
        timeout=timeout,
    )


def checked(response: httpx.Response) -> dict[str, Any]:
    """The JSON body, after checking the request id and the schema for its status."""
    assert response.headers["x-request-id"].startswith("req_")
    body = response.json()
    if response.status_code == 200:
        spec.validate_images_response(body)
    else:
        spec.validate_error_response(body)
    return body


def decode(item: dict[str, Any]) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(item["b64_json"], validate=True)))


def error_of(response: httpx.Response, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.text
    return checked(response)["error"]


# -- success --------------------------------------------------------------------------------


def test_variation_b64_json_returns_n_distinct_pngs_of_the_size(loopback: LoopbackServer) -> None:
    response = post(loopback, n=3, size="256x256", response_format="b64_json", user="u1")
    body = checked(response)
    images = [decode(item) for item in body["data"]]
    assert [(im.format, im.size) for im in images] == [("PNG", (256, 256))] * 3
    assert len({im.tobytes() for im in images}) == 3
    assert set(body) == {"created", "data"}


def test_variation_pixels_are_the_input_blended_with_the_index_tint(
    loopback: LoopbackServer,
) -> None:
    body = checked(post(loopback, upload=png_bytes(color=RED), n=2, response_format="b64_json"))
    for index, item in enumerate(body["data"]):
        expected = [
            round(c * (1 - TINT_WEIGHT) + t * TINT_WEIGHT)
            for c, t in zip(RED, TINTS[index], strict=True)
        ]
        got = decode(item).convert("RGB").getpixel((10, 10))
        assert all(abs(g - e) <= 1 for g, e in zip(got, expected, strict=True)), (got, expected)


def test_variation_defaults_to_url_results_served_by_the_server(loopback: LoopbackServer) -> None:
    body = checked(post(loopback, n=2, size="256x256"))
    assert all(set(item) == {"url"} for item in body["data"])
    for item in body["data"]:
        download = httpx.get(item["url"], timeout=10)
        assert download.status_code == 200
        assert download.headers["content-type"] == "image/png"
        assert download.headers["x-request-id"].startswith("req_")
        assert Image.open(io.BytesIO(download.content)).size == (256, 256)
    assert [httpx.URL(item["url"]).path for item in body["data"]] == loopback.downloads


def test_identical_requests_give_identical_images(loopback: LoopbackServer) -> None:
    first, second = (
        checked(post(loopback, size="256x256", response_format="b64_json")) for _ in range(2)
    )
    assert first["data"] == second["data"]


def test_requests_are_recorded_with_headers_fields_and_files(
    loopback_with_key: LoopbackServer,
) -> None:
    key = loopback_with_key.api_key
    image = png_bytes((32, 32))
    post(loopback_with_key, upload=image, headers={"Authorization": f"Bearer {key}"}, n=1)
    post(loopback_with_key, "edits", upload=image, prompt="a hat", model="gpt-image-1")
    first, second = loopback_with_key.requests
    assert (first.method, first.path) == ("POST", "/v1/images/variations")
    assert first.authorization == f"Bearer {key}"
    assert first.fields == {"n": "1"}
    part = first.file("image")
    assert part is not None
    assert (part.filename, part.content_type, part.data) == ("in.png", "image/png", image)
    assert part.image.size == (32, 32)
    spec.validate_variation_request(first.form)
    assert second.path == "/v1/images/edits"
    assert second.authorization is None
    assert second.file("image[]") is not None
    spec.validate_edits_request(second.form)


def test_chunked_upload_is_parsed(loopback: LoopbackServer) -> None:
    # A streamed body goes out with Transfer-Encoding: chunked; the server must still read it.
    request = httpx.Request(
        "POST",
        f"{loopback.base_url}/images/variations",
        files={"image": ("c.png", png_bytes(), "image/png")},
        data={"n": "2", "size": "256x256", "response_format": "b64_json"},
    )
    content = request.read()

    def pieces() -> Iterator[bytes]:
        for start in range(0, len(content), 100):
            yield content[start : start + 100]

    response = httpx.post(
        request.url,
        content=pieces(),
        headers={"content-type": request.headers["content-type"]},
        timeout=10,
    )
    assert len(checked(response)["data"]) == 2
    assert loopback.requests[0].headers["transfer-encoding"] == "chunked"


def test_edits_returns_b64_in_the_output_format_with_usage(loopback: LoopbackServer) -> None:
    landscape = png_bytes((300, 200), fmt="JPEG")
    files = [
        ("image[]", ("a.jpg", landscape, "image/jpeg")),
        ("image[]", ("b.webp", png_bytes(fmt="WEBP"), "image/webp")),
    ]
    response = post(
        loopback, "edits", files=files, prompt="the same cup in winter", n=2,
        output_format="webp", output_compression=60, input_fidelity="high",
    )  # fmt: skip
    body = checked(response)
    assert {k: body[k] for k in ("background", "output_format", "quality", "size")} == {
        "background": "opaque",
        "output_format": "webp",
        "quality": "medium",
        "size": "1536x1024",
    }
    assert [(im.format, im.size) for im in map(decode, body["data"])] == [
        ("WEBP", (1536, 1024))
    ] * 2
    usage = body["usage"]
    assert usage["input_tokens_details"]["image_tokens"] > 0
    assert usage["input_tokens"] == sum(usage["input_tokens_details"].values())
    assert usage["output_tokens"] == sum(usage["output_tokens_details"].values())
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    spec.validate_edits_request(loopback.requests[0].form)


@pytest.mark.parametrize(
    ("fields", "fmt", "mode"),
    [
        ({"background": "transparent", "quality": "low"}, "PNG", "RGBA"),
        ({"output_format": "jpeg", "size": "1024x1536"}, "JPEG", "RGB"),
    ],
)
def test_edits_formats_and_transparency(
    loopback: LoopbackServer, fields: dict[str, str], fmt: str, mode: str
) -> None:
    body = checked(post(loopback, "edits", prompt="p", **fields))
    image = decode(body["data"][0])
    assert (image.format, image.mode) == (fmt, mode)
    if mode == "RGBA":
        assert image.getpixel((0, 0))[3] == 0
        assert image.getpixel((image.width // 2, image.height // 2))[3] == 255
        assert body["background"] == "transparent"


def test_health_and_unknown_paths(loopback: LoopbackServer) -> None:
    health = httpx.get(f"{loopback.url}/health", timeout=10)
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    for response in (
        httpx.get(f"{loopback.base_url}/models", timeout=10),
        httpx.post(f"{loopback.base_url}/images/generations", json={}, timeout=10),
        httpx.get(f"{loopback.url}/files/unknown.png", timeout=10),
    ):
        assert error_of(response, 404)["type"] == "invalid_request_error"


# -- request errors ---------------------------------------------------------------------------


def _big_png() -> bytes:
    # The size check comes before decoding, so trailing padding is enough.
    return png_bytes() + bytes(4 * 1024 * 1024)


@pytest.mark.parametrize(
    ("kwargs", "param", "fragment"),
    [
        ({"content_type": "application/octet-stream"}, "image", "unsupported mimetype"),
        ({"upload": png_bytes(fmt="JPEG")}, "image", "must be a PNG"),
        ({"upload": b"\x89PNG\r\n\x1a\nbroken"}, "image", "must be a PNG"),
        ({"upload": _big_png()}, "image", "less than 4 MB"),
        ({"upload": png_bytes((64, 48))}, "image", "must be square"),
        ({"upload": png_bytes(mode="P")}, "image", "got P"),
        ({"upload": png_bytes(mode="L")}, "image", "got L"),
        ({"files": []}, "image", "Missing required parameter"),
        ({"files": [], "image": "text"}, "image", "expected a file"),
        ({"n": 0}, "n", "below minimum"),
        ({"n": 11}, "n", "above maximum"),
        ({"n": "four"}, "n", "expected an integer"),
        ({"size": "300x300"}, "size", "'256x256', '512x512', and '1024x1024'"),
        ({"response_format": "jpg"}, "response_format", "Supported values"),
        ({"prompt": "a cat"}, "prompt", "Unknown parameter"),
    ],
)
def test_variation_request_errors(
    loopback: LoopbackServer, kwargs: dict[str, Any], param: str, fragment: str
) -> None:
    error = error_of(post(loopback, **kwargs))
    assert error["param"] == param
    assert fragment in error["message"]
    assert error["type"] == "invalid_request_error"


def test_extra_fields_are_accepted_when_declared() -> None:
    with LoopbackServer(extra_fields=("seed",)) as server:
        assert post(server, seed=7, size="256x256").status_code == 200
    assert not server.errors


def test_non_multipart_body_is_refused(loopback: LoopbackServer) -> None:
    response = httpx.post(f"{loopback.base_url}/images/variations", json={"n": 1}, timeout=10)
    assert "multipart/form-data" in error_of(response)["message"]


@pytest.mark.parametrize(
    ("kwargs", "param", "fragment"),
    [
        ({}, "prompt", "Missing required parameter: 'prompt'"),
        ({"prompt": "p", "size": "512x512"}, "size", "Supported values are"),
        ({"prompt": "p", "quality": "ultra"}, "quality", "Supported values are"),
        ({"prompt": "p", "n": 12}, "n", "above maximum"),
        ({"prompt": "p", "output_compression": 101}, "output_compression", "above maximum"),
        ({"prompt": "p", "input_fidelity": "max"}, "input_fidelity", "Supported values"),
        (
            {"prompt": "p", "background": "transparent", "output_format": "jpeg"},
            "background",
            "not supported",
        ),
        ({"prompt": "p", "output_compression": 50}, "output_compression", "PNG"),
        ({"prompt": "p", "model": "dall-e-3"}, "model", "dall-e-3"),
        ({"prompt": "p", "response_format": "url"}, "response_format", "Unknown parameter"),
        ({"prompt": "p", "content_type": "image/gif"}, "image", "unsupported mimetype"),
        ({"prompt": "p", "upload": b"not an image"}, "image", "Invalid image file"),
        ({"prompt": "p", "files": []}, "image", "Missing required parameter: 'image'"),
    ],
)
def test_edits_request_errors(
    loopback: LoopbackServer, kwargs: dict[str, Any], param: str, fragment: str
) -> None:
    error = error_of(post(loopback, "edits", **kwargs))
    assert error["param"] == param
    assert fragment in error["message"]


def test_auth_missing_wrong_and_right_key(loopback_with_key: LoopbackServer) -> None:
    key = loopback_with_key.api_key
    assert key is not None
    missing = error_of(post(loopback_with_key), 401)
    assert "didn't provide an API key" in missing["message"]
    wrong_key = "sk-wrong-PRIVATE-9f8e7d6c"
    wrong = error_of(post(loopback_with_key, headers={"Authorization": f"Bearer {wrong_key}"}), 401)
    assert wrong["code"] == "invalid_api_key"
    assert wrong["message"] == "Incorrect API key provided: sk-...6c."[:-3] + "7d6c."
    assert "PRIVATE" not in wrong["message"]
    short = error_of(post(loopback_with_key, headers={"Authorization": "Bearer abc"}), 401)
    assert "abc" not in short["message"]
    ok = post(loopback_with_key, headers={"Authorization": f"Bearer {key}"}, size="256x256")
    assert ok.status_code == 200


# -- faults -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "status", "header", "error_type", "code"),
    [
        (Fault.status(429, retry_after="1"), 429, ("retry-after", "1"), "requests", None),
        (Fault.status(429, retry_after_ms=50), 429, ("retry-after-ms", "50"), "requests", None),
        (Fault.status(500), 500, None, "server_error", None),
        (Fault.status(503), 503, None, "server_error", None),
        (
            Fault.x_should_retry(500, "false"),
            500,
            ("x-should-retry", "false"),
            "server_error",
            None,
        ),
        (
            Fault.status(400, message="Your prompt was refused.", param="prompt", error_code="x"),
            400,
            None,
            "invalid_request_error",
            "x",
        ),
    ],
)
def test_status_faults_send_openai_errors_then_normal_service_resumes(
    loopback: LoopbackServer,
    fault: Fault,
    status: int,
    header: tuple[str, str] | None,
    error_type: str,
    code: str | None,
) -> None:
    loopback.enqueue(fault)
    response = post(loopback)
    error = error_of(response, status)
    assert error["type"] == error_type
    if header:
        assert response.headers[header[0]] == header[1]
    if code:
        assert error["code"] == code
    if status == 400:
        assert (error["message"], error["param"]) == ("Your prompt was refused.", "prompt")
    assert loopback.faults_pending == 0
    assert post(loopback, size="256x256").status_code == 200


def test_status_fault_with_raw_body(loopback: LoopbackServer) -> None:
    loopback.enqueue(Fault.status(502, body="<html>bad gateway</html>"))
    response = post(loopback, "edits", prompt="p")
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("text/html")
    assert response.text == "<html>bad gateway</html>"


def test_faults_are_consumed_in_order_by_images_requests_only(loopback: LoopbackServer) -> None:
    loopback.enqueue(Fault.status(500), Fault.status(503))
    assert httpx.get(f"{loopback.url}/health", timeout=10).status_code == 200
    assert loopback.faults_pending == 2
    statuses = [post(loopback, size="256x256").status_code for _ in range(3)]
    assert statuses == [500, 503, 200]
    assert len(loopback.requests) == 3


def test_drop_closes_without_a_response_and_the_request_is_recorded(
    loopback: LoopbackServer,
) -> None:
    loopback.enqueue(Fault.drop())
    with pytest.raises(httpx.RemoteProtocolError):
        post(loopback)
    assert len(loopback.requests) == 1


def test_drop_mid_body_sends_headers_then_part_of_the_body(loopback: LoopbackServer) -> None:
    loopback.enqueue(Fault.drop_mid_body())
    with httpx.Client(timeout=10) as client:
        request = client.build_request(
            "POST",
            f"{loopback.base_url}/images/variations",
            files={"image": ("in.png", png_bytes(), "image/png")},
            data={"response_format": "b64_json", "size": "256x256"},
        )
        response = client.send(request, stream=True)
        assert response.status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):
            response.read()
        response.close()


def test_delay_and_latency_hold_the_answer(loopback: LoopbackServer) -> None:
    loopback.enqueue(Fault.delay(30))
    with pytest.raises(httpx.ReadTimeout):
        post(loopback, timeout=0.3)
    assert post(loopback, size="256x256").status_code == 200
    loopback.latency = 30
    with pytest.raises(httpx.ReadTimeout):
        post(loopback, timeout=0.3)


def test_requests_are_served_concurrently(loopback: LoopbackServer) -> None:
    # One request is held for a long time; another, sent meanwhile, must still be answered.
    loopback.enqueue(Fault.delay(60))
    outcome: list[BaseException] = []

    def held() -> None:
        try:
            post(loopback, timeout=None)
        except httpx.HTTPError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=held)
    thread.start()
    while loopback.faults_pending:  # wait until the held request took the fault
        threading.Event().wait(0.01)
    assert post(loopback, size="256x256").status_code == 200
    assert thread.is_alive()
    loopback.close()  # ends the held answer: the connection closes without a response
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert isinstance(outcome[0], httpx.RemoteProtocolError)


@pytest.mark.parametrize("pieces", [1, 10])
def test_slow_body_sends_headers_then_stalls(loopback: LoopbackServer, pieces: int) -> None:
    loopback.enqueue(Fault.slow_body(30, pieces=pieces))
    with httpx.stream(
        "POST",
        f"{loopback.base_url}/images/variations",
        files={"image": ("in.png", png_bytes(), "image/png")},
        timeout=httpx.Timeout(10, read=0.3),
    ) as response:
        assert response.status_code == 200
        with pytest.raises(httpx.ReadTimeout):
            response.read()


def test_slow_body_completes_when_the_client_waits(loopback: LoopbackServer) -> None:
    loopback.enqueue(Fault.slow_body(0.4, pieces=4))
    assert len(checked(post(loopback, n=2, size="256x256"))["data"]) == 2


@pytest.mark.parametrize("fault", [Fault.malformed_json(), Fault.truncated_json()])
def test_broken_json_bodies(loopback: LoopbackServer, fault: Fault) -> None:
    loopback.enqueue(fault)
    response = post(loopback, response_format="b64_json", size="256x256")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert int(response.headers["content-length"]) == len(response.content)
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_bad_base64_hits_the_given_index(loopback: LoopbackServer) -> None:
    loopback.enqueue(Fault.bad_base64(index=1))
    data = checked(post(loopback, n=3, response_format="b64_json", size="256x256"))["data"]
    decode(data[0])
    decode(data[2])
    with pytest.raises(binascii.Error):
        base64.b64decode(data[1]["b64_json"])


@pytest.mark.parametrize("endpoint", ["variations", "edits"])
def test_not_an_image_is_valid_base64_of_other_bytes(
    loopback: LoopbackServer, endpoint: str
) -> None:
    loopback.enqueue(Fault.not_an_image())
    fields = {"response_format": "b64_json", "size": "256x256"}
    if endpoint == "edits":
        fields = {"prompt": "p", "size": "1024x1024", "quality": "low"}
    data = checked(post(loopback, endpoint, n=2, **fields))["data"]
    for item in data:
        with pytest.raises(UnidentifiedImageError):
            decode(item)


def test_not_an_image_also_applies_to_url_content(loopback: LoopbackServer) -> None:
    loopback.enqueue(Fault.not_an_image())
    url = checked(post(loopback, size="256x256"))["data"][0]["url"]
    content = httpx.get(url, timeout=10).content
    with pytest.raises(UnidentifiedImageError):
        Image.open(io.BytesIO(content))


def test_wrong_size(loopback: LoopbackServer) -> None:
    loopback.enqueue(Fault.wrong_size())
    data = checked(post(loopback, response_format="b64_json", size="512x512"))["data"]
    assert decode(data[0]).size == (256, 256)


def test_url_404_hits_the_given_index(loopback: LoopbackServer) -> None:
    loopback.enqueue(Fault.url_404(index=0))
    data = checked(post(loopback, n=2, size="256x256"))["data"]
    assert error_of(httpx.get(data[0]["url"], timeout=10), 404)["message"]
    assert httpx.get(data[1]["url"], timeout=10).status_code == 200


def test_url_never_ends_stalls_until_close(loopback: LoopbackServer) -> None:
    loopback.enqueue(Fault.url_never_ends())
    url = checked(post(loopback, size="256x256"))["data"][0]["url"]
    outcome: list[Any] = []
    headers_seen = threading.Event()

    def download() -> None:
        try:
            with httpx.stream("GET", url, timeout=None) as response:
                outcome.append(response.status_code)
                headers_seen.set()
                response.read()
        except httpx.HTTPError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=download)
    thread.start()
    assert headers_seen.wait(10)
    assert thread.is_alive()
    loopback.close()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert outcome[0] == 200
    assert isinstance(outcome[1], httpx.RemoteProtocolError)


def test_close_ends_idle_and_half_sent_connections() -> None:
    server = LoopbackServer()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as idle:
        idle.sendall(b"POST /v1/images/variations HTTP/1.1\r\nContent-Length: 100\r\n\r\nab")
        while not server.open_connections:  # its handler thread now waits for the body
            threading.Event().wait(0.01)
        server.close()
        assert idle.recv(1024) == b""  # closed by the server, no response
    assert not server.errors
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/health", timeout=2)


# -- the spec validators ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("validator", "value"),
    [
        (spec.validate_images_response, {"data": []}),
        (spec.validate_images_response, {"created": 1, "data": [{"b64_json": 5}]}),
        (spec.validate_images_response, {"created": 1, "size": "256x256"}),
        (spec.validate_error_response, {"error": {"message": "m", "type": "t", "param": None}}),
        (spec.validate_variation_request, {"n": "1"}),
        (spec.validate_variation_request, {"image": "text only"}),
        (spec.validate_variation_request, {"image": b"x", "n": "11"}),
        (spec.validate_variation_request, {"image": b"x", "response_format": "png"}),
        (spec.validate_edits_request, {"image": b"x"}),
        (spec.validate_edits_request, {"prompt": "p"}),
        (spec.validate_edits_request, {"image[]": b"x", "prompt": "p", "size": "256x256"}),
        (spec.validate_edits_request, {"image": b"x", "prompt": "p", "output_compression": "101"}),
    ],
)
def test_spec_validators_reject(validator: Any, value: dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        validator(value)


def test_spec_validators_accept_numeric_strings() -> None:
    spec.validate_variation_request({"image": b"x", "n": "10", "size": "512x512"})
    spec.validate_edits_request({"image[]": b"x", "prompt": "p", "n": "2", "quality": "high"})


def test_png_bytes_modes_and_formats() -> None:
    assert Image.open(io.BytesIO(png_bytes(mode="P"))).mode == "P"
    rgba = Image.open(io.BytesIO(png_bytes((8, 4), (1, 2, 3, 0), "RGBA")))
    assert (rgba.size, rgba.getpixel((0, 0))) == ((8, 4), (1, 2, 3, 0))
    assert Image.open(io.BytesIO(png_bytes(fmt="WEBP"))).format == "WEBP"
