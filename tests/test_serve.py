"""The service answers what ``predict`` writes, bit for bit, also in batches and under 8 concurrent
clients (with ``shared_forward`` up to float rounding); it batches, shows it on /metrics, and waits
for warm-up before it says it is ready."""

import concurrent.futures

import pytest

from serving import GatedDetector, metric, post_image, predict_records, running, same_record, wait_for, write_images
from sparse_rcnn.models import load_model
from sparse_rcnn.serve import ServeSettings, create_app


@pytest.fixture(scope="module")
def images(tmp_path_factory, tiny_weights):
    folder = tmp_path_factory.mktemp("serve_images")
    paths = write_images(folder)
    return paths, predict_records(paths, tiny_weights, folder / "predict.json")


def test_answers_at_batch_one_are_bit_identical_to_predict(tiny_weights, images):
    paths, want = images
    app = create_app(load_model(weights=tiny_weights), ServeSettings(max_batch=1))
    with running(app) as client:
        for path in paths:
            r = post_image(client, path)
            assert r.status_code == 200, r.text
            assert same_record(r.json(), want[path], exact=True)
        with concurrent.futures.ThreadPoolExecutor(8) as pool:  # 8 clients at once, mixed sizes
            answers = list(pool.map(lambda p: post_image(client, p), paths * 2))
        assert all(same_record(r.json(), want[p], exact=True) for p, r in zip(paths * 2, answers))
        raw = open(paths[0], "rb").read()  # the raw-body form: same detections, no file name
        r = client.post("/v1/detect", content=raw, headers={"Content-Type": "image/png"})
        assert r.json() == {**want[paths[0]], "image": ""}


def _queued_together(client, detector, paths):
    """POST the 8 ``paths`` at once while the model is held, so all are queued together (the batches
    are then certain); the answers once it is let go."""
    detector.close()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(post_image, client, path) for path in paths]
        wait_for(
            lambda: detector.entered.is_set() and detector.held + metric(client, "sparse_rcnn_queue_depth") == 8,
            "all 8 requests at the model or queued",
        )
        detector.gate.set()
        return [f.result() for f in futures]


def test_score_thr_filters_like_predict(tiny_weights, images, tmp_path):
    paths, _ = images
    want = predict_records(paths[:2], tiny_weights, tmp_path / "p.json")  # reference at 0
    app = create_app(load_model(weights=tiny_weights), ServeSettings(max_batch=1))
    with running(app) as client:
        for path in paths[:2]:
            scores = sorted(d["score"] for d in want[path]["detections"])
            thr = scores[len(scores) // 2]
            got = post_image(client, path, score_thr=str(thr)).json()
            assert got["detections"] == [d for d in want[path]["detections"] if d["score"] >= thr]
            assert 0 < len(got["detections"]) < len(want[path]["detections"])


def test_eight_concurrent_clients_are_batched_and_answered_like_predict(tiny_weights, images):
    paths, want = images
    detector = GatedDetector(load_model(weights=tiny_weights))
    app = create_app(detector, ServeSettings(max_batch=8, max_wait_ms=50))
    with running(app) as client:
        answers = _queued_together(client, detector, paths)
        assert [r.status_code for r in answers] == [200] * 8
        for path, r in zip(paths, answers):
            assert same_record(r.json(), want[path], exact=True), path
        # 8 images in 3 padded shapes: some shape has 2 or more among those queued behind the first forward
        assert max(detector.batches) > 1 and sum(detector.batches) == 1 + 8  # warm-up + 8
        assert all(detector.independent)  # each image alone in its batch: bit-identical
        text = client.get("/metrics").text
        one = float(
            next(s for s in text.splitlines() if s.startswith('sparse_rcnn_batch_size_bucket{le="1.0"}')).split()[1]
        )
        assert metric(client, "sparse_rcnn_batch_size_count") > one  # some forward held more than one image

        # and freely, 8 clients x 4 requests of mixed sizes: no errors, the same answers
        jobs = [paths[(i + j) % len(paths)] for i in range(8) for j in range(4)]
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda p: post_image(client, p), jobs))
        assert [r.status_code for r in answers] == [200] * len(jobs)
        assert all(same_record(r.json(), want[p], exact=True) for p, r in zip(jobs, answers))
        assert 'sparse_rcnn_requests_total{route="/v1/detect",status="200"} 40.0' in client.get("/metrics").text


def test_a_shared_forward_answers_up_to_float_rounding(tiny_weights, images):
    paths, want = images
    detector = GatedDetector(load_model(weights=tiny_weights))
    app = create_app(detector, ServeSettings(max_batch=8, max_wait_ms=50, shared_forward=True))
    with running(app) as client:
        answers = _queued_together(client, detector, paths)
        assert max(detector.batches) > 1 and not any(detector.independent)  # batches, each one forward
        assert all(same_record(r.json(), want[p], exact=False) for p, r in zip(paths, answers))


def test_not_ready_until_warmed_up_and_alive_meanwhile(tiny_weights):
    detector = GatedDetector(load_model(weights=tiny_weights))
    detector.close()  # the warm-up forward waits
    with running(create_app(detector), ready=False) as client:
        wait_for(detector.entered.is_set, "the warm-up forward")
        assert client.get("/healthz").status_code == 200
        r = client.get("/readyz")
        assert r.status_code == 503 and r.json()["error"].startswith("warming up")
        detector.gate.set()
        wait_for(lambda: client.get("/readyz").status_code == 200, "ready")


def test_page_and_metrics_are_served(tiny_weights):
    with running(create_app(load_model(weights=tiny_weights))) as client:
        page = client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert '<script src="page.js"></script>' in page.text and "http" not in page.text.replace("https://", "")
        assert "textContent" in client.get("/page.js").text
        assert client.get("/v1/info").json()["class_names"] == ["cat", "dog", "bird"]
        assert metric(client, "process_resident_memory_bytes") > 0
        assert "access-control-allow-origin" not in client.get("/", headers={"Origin": "http://x.example"}).headers
