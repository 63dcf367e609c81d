"""The same app on Ray Serve: two model replicas on a local Ray (2 CPUs) answer predict's records,
and a model replica killed with requests in flight loses none: each completes (retried once on the
other replica by the front) or gets a clean JSON 503 with Retry-After, none hangs, and Ray starts a
new replica that answers again."""

import concurrent.futures
import os
import signal
import socket

import httpx
import pytest

from serving import post_image, predict_records, same_record, wait_for, write_images
from sparse_rcnn.serve import ServeSettings, loader, run_on_ray

ray = pytest.importorskip("ray")
serve = pytest.importorskip("ray.serve")

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _replica_pids() -> list[int]:
    """The processes of the model replicas: Ray titles them ``ray::ServeReplica:<app>:<deployment>``."""
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                    title = f.read().split(b"\0")[0]
            except OSError:
                continue
            if title.startswith(b"ray::ServeReplica:sparse_rcnn:model"):
                pids.append(int(entry.name))
    return pids


def _replicas(state: str = "RUNNING") -> int:
    status = serve.status().applications.get("sparse_rcnn")
    if status is None:
        return 0
    return status.deployments["model"].replica_states.get(state, 0)


@pytest.fixture(scope="module")
def ray_service(tiny_weights):
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    port = _free_port()
    try:
        run_on_ray(loader(weights=tiny_weights), ServeSettings(max_batch=1), replicas=2, port=port)
        wait_for(lambda: _replicas() == 2, "2 running replicas", 180)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            wait_for(lambda: client.get("/readyz").status_code == 200, "ready", 120)
            yield client
    finally:
        serve.shutdown()
        ray.shutdown()


def test_two_replicas_answer_predicts_records(ray_service, tiny_weights, tmp_path):
    paths = write_images(tmp_path)
    want = predict_records(paths, tiny_weights, tmp_path / "p.json")
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda p: post_image(ray_service, p), paths * 2))
    assert [r.status_code for r in answers] == [200] * len(answers)
    for path, r in zip(paths * 2, answers):
        assert same_record(r.json(), want[path], exact=True), path  # max_batch=1: bit-identical
    assert _replicas() == 2


def test_a_killed_replica_loses_no_request(ray_service, tiny_weights, tmp_path):
    paths = write_images(tmp_path)
    want = predict_records(paths, tiny_weights, tmp_path / "p.json")
    replica_pids = _replica_pids()
    assert len(replica_pids) == 2
    jobs = paths * 8
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(post_image, ray_service, p) for p in jobs]
        wait_for(lambda: sum(f.done() for f in futures) >= 8, "the stream of requests to be under way")
        os.kill(replica_pids[0], signal.SIGKILL)  # mid-stream: 8 clients have requests out
        answers = [f.result(timeout=120) for f in futures]  # none hangs
    codes = [r.status_code for r in answers]
    assert set(codes) <= {200, 503}, codes
    for path, r in zip(jobs, answers):
        if r.status_code == 200:
            assert same_record(r.json(), want[path], exact=True)
        else:  # the front's clean refusal, not Ray's plain-text 500
            assert r.headers["Retry-After"] == "1" and "retry shortly" in r.json()["error"]
    wait_for(lambda: _replicas() == 2, "the killed replica to be replaced", 180)
    assert all(post_image(ray_service, p).status_code == 200 for p in paths)
    shown = ray_service.get("/metrics").text  # a replica's metrics, then the front's own refusals
    assert "sparse_rcnn_requests_total" in shown and "# TYPE sparse_rcnn_front_refusals_total counter" in shown
    refused = sum(
        float(line.split()[-1])
        for line in shown.splitlines()
        if line.startswith('sparse_rcnn_front_refusals_total{route="/v1/detect",status="503"}')
    )
    assert refused == codes.count(503)
    errors = {r.text[:120] for r in answers if r.status_code != 200}
    print("answers while a replica was killed:", {c: codes.count(c) for c in set(codes)}, errors)
