"""The front's side of Ray Serve without Ray: a request handed on as data gets the app's own answer
(``call_app``), and a replica lost while holding it costs one retry, then a clean 503 with
``Retry-After``; a full queue is a 503, the deadline a 504, an oversized body a 413, all as JSON."""

import asyncio
import json

import pytest

from serving import predict_records, write_images
from sparse_rcnn.models import load_model
from sparse_rcnn.serve import ServeSettings, build, create_app
from sparse_rcnn.serve.forward import Answer, Forwarded, appended, call_app, forward, forwarded, json_answer
from sparse_rcnn.serve.metrics import FrontMetrics


class Lost(Exception):
    """Stands for Ray's ``ActorDiedError``: the replica holding the request died."""


class Busy(Exception):
    """Stands for Ray's ``BackPressureError``."""


async def _chunks(*parts: bytes):
    for part in parts:
        yield part


def _headers(answer: Answer) -> dict[bytes, bytes]:
    return dict(answer.headers)


def _front(call, settings=None, body=b"abc", headers=()):
    """``forward`` of a POST /v1/detect with ``body`` to ``call``, run to its answer."""
    all_headers = [(b"content-type", b"image/png"), *headers]
    coro = forward(
        "POST",
        "/v1/detect",
        b"",
        all_headers,
        _chunks(body),
        call,
        settings or ServeSettings(),
        lost=(Lost,),
        busy=(Busy,),
    )
    return asyncio.run(coro)


def test_a_forwarded_request_gets_the_apps_own_answer(tiny_weights, tmp_path):
    path = write_images(tmp_path)[0]
    want = predict_records([path], tiny_weights, tmp_path / "p.json")[path]
    app = create_app(load_model(weights=tiny_weights), ServeSettings(max_batch=1, api_key="k"))
    with open(path, "rb") as f:
        image = f.read()

    async def run() -> list[Answer]:
        async with app.router.lifespan_context(app):
            key = [(b"authorization", b"Bearer k"), (b"transfer-encoding", b"chunked")]
            raw = forwarded("POST", "/v1/detect", b"", [(b"Content-Type", b"image/png"), *key], image)
            return [
                await call_app(app, raw),
                await call_app(app, forwarded("GET", "/v1/info", b"", [], b"")),
                await call_app(app, forwarded("GET", "/healthz", b"", [], b"")),
            ]

    detected, refused, alive = asyncio.run(run())
    assert detected.status == 200 and json.loads(detected.body) == {**want, "image": ""}  # a raw body has no name
    assert refused.status == 401 and _headers(refused)[b"www-authenticate"] == b"Bearer"
    assert json.loads(refused.body)["error"].startswith("missing or wrong API key")
    assert alive.status == 200 and _headers(alive)[b"content-type"] == b"application/json"


def test_forwarded_drops_connection_headers_and_sets_the_length():
    request = forwarded("GET", "/", b"a=1", [(b"Transfer-Encoding", b"chunked"), (b"X-Id", b"7")], b"12345")
    assert request.headers == ((b"x-id", b"7"), (b"content-length", b"5"))


def test_a_lost_replica_costs_one_retry():
    calls: list[Forwarded] = []
    ok = Answer(200, ((b"content-type", b"application/json"),), b"{}")

    async def call(request: Forwarded) -> Answer:
        calls.append(request)
        if len(calls) == 1:
            raise Lost("the actor died unexpectedly before finishing this task")
        return ok

    assert _front(call) == ok
    assert len(calls) == 2 and calls[0] == calls[1] and calls[0].body == b"abc"


def test_a_request_lost_twice_gets_a_clean_503():
    calls = []

    async def call(request: Forwarded) -> Answer:
        calls.append(request)
        raise Lost("the actor died")

    answer = _front(call)
    assert len(calls) == 2
    assert answer.status == 503 and _headers(answer)[b"retry-after"] == b"1"
    assert json.loads(answer.body) == {"error": "the model replica stopped while answering; retry shortly"}


@pytest.mark.parametrize(
    "raised, status, message",
    [(Busy("queue full"), 503, "all model replicas are busy"), (ValueError("bug"), 500, "internal error: ValueError")],
)
def test_a_full_queue_is_503_at_once_and_anything_else_500(raised, status, message):
    calls = []

    async def call(request: Forwarded) -> Answer:
        calls.append(request)
        raise raised

    answer = _front(call)
    assert len(calls) == 1 and answer.status == status and message in json.loads(answer.body)["error"]
    assert (_headers(answer).get(b"retry-after") == b"1") == (status == 503)


def test_the_deadline_holds_over_a_replica_that_never_answers():
    async def call(request: Forwarded) -> Answer:
        await asyncio.Event().wait()  # never set
        raise AssertionError("unreachable")

    answer = _front(call, ServeSettings(timeout_s=0.2))
    assert answer.status == 504 and json.loads(answer.body) == {"error": "no answer within the 0.2 s deadline"}


def test_an_oversized_body_is_refused_before_any_replica():
    async def call(request: Forwarded) -> Answer:
        raise AssertionError("an oversized body reached a replica")

    settings = ServeSettings(max_upload_mb=1 / 1024)
    assert _front(call, settings, body=b"\0" * 2048).status == 413
    answer = _front(call, settings, body=b"", headers=[(b"content-length", b"4096")])
    assert answer == json_answer(413, "the upload is larger than the 0.000976562 MB limit")


def test_the_ray_builder_makes_a_front_before_the_model_replicas():
    serve = pytest.importorskip("ray.serve")
    app = build({"weights": "model.pth", "replicas": "2", "max_batch": "4"})
    assert isinstance(app, serve.Application)
    front = app._bound_deployment  # the ingress, bound to the model deployment's handle
    assert front.name == "front" and front.max_queued_requests == 64
    model = front.init_args[0]._bound_deployment
    assert model.name == "model" and model.num_replicas == 2 and model.max_ongoing_requests == 68
    with pytest.raises(ValueError, match="unknown arguments"):
        build({"weights": "model.pth", "replica": "2"})
    shared = build({"weights": "model.pth", "shared_forward": "true"})._bound_deployment.init_args[1]
    assert shared.shared_forward and not front.init_args[1].shared_forward
    with pytest.raises(ValueError, match="expected true or false"):
        build({"weights": "model.pth", "shared_forward": "yes please"})


def test_the_fronts_own_refusals_are_counted_and_shown_after_the_replicas_metrics():
    async def call(request: Forwarded) -> Answer:
        raise Busy("queue full")

    refusal = _front(call)
    assert refusal.own and not Answer(200, (), b"").own
    metrics = FrontMetrics()
    metrics.count("/v1/detect", refusal.status)
    replica = Answer(200, ((b"content-type", b"text/plain"), (b"content-length", b"9")), b"replica\n\n")
    shown = appended(replica, metrics.render())
    assert shown.body.startswith(b"replica\n\n")
    assert b'sparse_rcnn_front_refusals_total{route="/v1/detect",status="503"} 1.0' in shown.body
    assert dict(shown.headers)[b"content-length"] == str(len(shown.body)).encode()
