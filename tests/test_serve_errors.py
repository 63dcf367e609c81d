"""Every bad request gets its 4xx and a one-line JSON error, and the next good request is answered
correctly; the queue limit answers 503, the deadline 504, a failing model 500; the API key holds."""

import concurrent.futures
import struct
import zlib

import pytest

from serving import GatedDetector, metric, png_bytes, post_image, predict_records, running, wait_for, write_images
from sparse_rcnn.models import load_model
from sparse_rcnn.serve import ServeSettings, create_app
from sparse_rcnn.serve.app import OPEN_ROUTES


def png_header(w: int, h: int) -> bytes:
    """A PNG whose header claims w x h pixels, with almost no pixel data behind it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_weights):
    """A server with a 64 KB upload limit, its client, a good image and predict's record of it."""
    folder = tmp_path_factory.mktemp("serve_errors")
    path = write_images(folder)[0]
    want = predict_records([path], tiny_weights, folder / "p.json")[path]
    app = create_app(load_model(weights=tiny_weights), ServeSettings(max_batch=1, max_upload_mb=1 / 16))
    with running(app) as client:
        yield client, path, want


def _truncated() -> bytes:
    data = png_bytes(50, 70, 0)
    return data[: len(data) // 2]


PNG = {"Content-Type": "image/png"}
BAD = [
    ("empty body", dict(content=b"", headers=PNG), 400, "empty body"),
    ("not an image", dict(content=b"hello, world" * 10, headers=PNG), 422, "not an image"),
    ("truncated image", dict(content=_truncated(), headers=PNG), 422, "truncated"),
    ("30000x30000 header", dict(content=png_header(30000, 30000), headers=PNG), 413, "MP limit"),
    ("11000x10000 header", dict(content=png_header(11000, 10000), headers=PNG), 413, "MP limit"),
    ("oversized upload", dict(content=b"\0" * 70_000, headers=PNG), 413, "larger than the 0.0625 MB limit"),
    ("wrong content type", dict(content=b"abc", headers={"Content-Type": "text/plain"}), 415, "unsupported content"),
    ("no content type", dict(content=b"abc"), 415, "unsupported content"),
    ("form without image", dict(files={"photo": ("a.png", b"abc", "image/png")}), 400, "no field 'image'"),
    ("empty image field", dict(files={"image": ("a.png", b"", "image/png")}), 400, "is empty"),
    ("form without boundary", dict(content=b"x", headers={"Content-Type": "multipart/form-data"}), 400, "boundary"),
]


@pytest.mark.parametrize("name, request_kwargs, status, message", BAD, ids=[b[0] for b in BAD])
def test_bad_upload_gets_its_error_and_the_service_goes_on(served, name, request_kwargs, status, message):
    client, path, want = served
    r = client.post("/v1/detect", **request_kwargs)
    assert r.status_code == status, r.text
    body = r.json()
    assert list(body) == ["error"] and message in body["error"] and "\n" not in body["error"]
    assert "Traceback" not in r.text
    good = post_image(client, path)
    assert good.status_code == 200 and good.json() == want


@pytest.mark.parametrize("value", ["abc", "1.5", "-0.1", "nan", "inf", "auto"])
def test_bad_score_thr_is_400(served, value):
    client, path, want = served
    r = post_image(client, path, score_thr=value)
    assert r.status_code == 400 and "score_thr" in r.json()["error"]  # auto: this model has no thresholds
    assert post_image(client, path).json() == want


def test_unknown_route_and_method_are_json(served):
    client, _, _ = served
    assert client.get("/nope").status_code == 404 and "error" in client.get("/nope").json()
    r = client.get("/v1/detect")
    assert r.status_code == 405 and "error" in r.json()


def test_queue_limit_answers_503_and_the_deadline_504(tiny_weights, tmp_path):
    path = write_images(tmp_path)[0]
    detector = GatedDetector(load_model(weights=tiny_weights))
    app = create_app(detector, ServeSettings(max_batch=1, max_queue=2, timeout_s=60))
    with running(app) as client, concurrent.futures.ThreadPoolExecutor(3) as pool:
        detector.close()
        first = pool.submit(post_image, client, path)
        wait_for(detector.entered.is_set, "the first request at the model")
        queued = [pool.submit(post_image, client, path) for _ in range(2)]
        wait_for(lambda: metric(client, "sparse_rcnn_queue_depth") == 2, "2 queued requests")
        r = post_image(client, path)
        assert r.status_code == 503 and r.headers["Retry-After"] == "1" and "too many requests" in r.json()["error"]
        detector.gate.set()
        assert [f.result().status_code for f in [first, *queued]] == [200, 200, 200]

    detector = GatedDetector(load_model(weights=tiny_weights))
    with running(create_app(detector, ServeSettings(max_batch=1, timeout_s=0.5))) as client:
        detector.close()  # the model does not answer until the deadline has passed
        r = post_image(client, path)
        assert r.status_code == 504 and "0.5 s deadline" in r.json()["error"]
        detector.gate.set()
        assert post_image(client, path).status_code == 200


def test_a_failing_model_answers_500_and_the_service_goes_on(tiny_weights, tmp_path):
    path = write_images(tmp_path)[0]
    detector = GatedDetector(load_model(weights=tiny_weights))
    with running(create_app(detector, ServeSettings(max_batch=1))) as client:
        detector.fail_next = True
        r = post_image(client, path)
        assert r.status_code == 500 and r.json() == {"error": "the model failed: RuntimeError: boom"}
        assert post_image(client, path).status_code == 200
        assert 'status="500"} 1.0' in client.get("/metrics").text


def test_api_key_guards_every_route_but_the_probes_and_the_page(tiny_weights, tmp_path):
    path = write_images(tmp_path)[0]
    app = create_app(load_model(weights=tiny_weights), ServeSettings(api_key="s3cret-key"))
    guarded = ["/v1/info", "/metrics", "/nope", "/v1/detect"]
    with running(app) as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret-key"}):
            client.headers.clear()
            client.headers.update(headers)
            assert post_image(client, path).status_code == 401
            for route in guarded:
                r = client.get(route)
                assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer", route
                assert "API key" in r.json()["error"]
        client.headers.clear()
        assert [client.get(route).status_code for route in sorted(OPEN_ROUTES)] == [200] * len(OPEN_ROUTES)
        client.headers["Authorization"] = "Bearer s3cret-key"
        assert post_image(client, path).status_code == 200
        assert client.get("/v1/info").json()["api_key_required"] is True
        assert client.get("/metrics").status_code == 200
        assert client.get("/nope").status_code == 404 and client.get("/v1/detect").status_code == 405


def test_without_an_api_key_every_route_is_open(served):
    client, _, _ = served
    assert client.get("/v1/info").json()["api_key_required"] is False
    assert client.get("/metrics").status_code == 200


def test_cors_is_off_unless_asked_for(tiny_weights):
    settings = ServeSettings(cors_origins=("http://app.example",), api_key="k")
    with running(create_app(load_model(weights=tiny_weights), settings)) as client:
        ok = client.get("/healthz", headers={"Origin": "http://app.example"})
        assert ok.headers["access-control-allow-origin"] == "http://app.example"
        other = client.get("/healthz", headers={"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        # a browser's preflight carries no key; the refusal of a keyless call is readable by the page
        ask = {"Origin": "http://app.example", "Access-Control-Request-Method": "POST"}
        preflight = client.options("/v1/detect", headers={**ask, "Access-Control-Request-Headers": "authorization"})
        assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == "http://app.example"
        denied = client.get("/v1/info", headers={"Origin": "http://app.example"})
        assert denied.status_code == 401 and denied.headers["access-control-allow-origin"] == "http://app.example"


def test_settings_refuse_nonsense():
    for bad in (
        dict(max_batch=0),
        dict(max_queue=0),
        dict(timeout_s=0),
        dict(max_wait_ms=float("nan")),
        dict(api_key=""),
    ):
        with pytest.raises(ValueError, match=f"`{next(iter(bad))}`"):
            ServeSettings(**bad)
