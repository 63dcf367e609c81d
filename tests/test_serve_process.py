"""``sparse-rcnn serve`` as a real process: SIGTERM with requests in flight lets them complete and
exits 0; the command's bad flags are one line and status 2."""

import concurrent.futures
import os
import re
import signal
import subprocess
import sys
import threading

import httpx
import pytest

from serving import metric, post_image, wait_for, write_images
from sparse_rcnn import cli


@pytest.mark.slow
def test_sigterm_drains_requests_in_flight_and_exits_0(tiny_weights, tmp_path):
    paths = write_images(tmp_path)[:3]
    # A batch waits up to 3 s to fill: the 3 requests are certainly in flight when SIGTERM comes.
    cmd = [sys.executable, "-m", "sparse_rcnn.cli", "serve", "--weights", tiny_weights, "--port", "0"]
    cmd += ["--max-batch", "8", "--max-wait-ms", "3000", "--drain-timeout", "60"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env={**os.environ, "SPARSE_RCNN_API_KEY": ""})
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    try:
        wait_for(lambda: any("Uvicorn running on" in s for s in lines) or proc.poll() is not None, "the server", 120)
        port = int(re.search(r"Uvicorn running on http://127\.0\.0\.1:(\d+)", "".join(lines)).group(1))
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            wait_for(lambda: client.get("/readyz").status_code == 200, "ready", 120)
            with concurrent.futures.ThreadPoolExecutor(3) as pool:
                futures = [pool.submit(post_image, client, p) for p in paths]
                wait_for(lambda: metric(client, "sparse_rcnn_queue_depth") == 3, "3 requests in flight")
                proc.send_signal(signal.SIGTERM)
                answers = [f.result() for f in futures]
        assert [r.status_code for r in answers] == [200, 200, 200]
        assert proc.wait(90) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(10)
    assert not any("Traceback" in s for s in lines), "".join(lines)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--max-wait-ms", "-1"], "--max-wait-ms cannot be -1.0"),
        (["--replicas", "2"], "--replicas, --address and --num-cpus go with --ray"),
    ],
)
def test_bad_flags_are_one_line(tiny_weights, run_cli, flags, message):
    rc, errors = run_cli(["serve", "--weights", tiny_weights, *flags])
    assert rc == 2 and errors == [message]


def test_serve_is_a_command():
    assert "serve" in cli.build_parser().format_help()


def test_without_the_serve_extra_the_cli_works_and_serve_says_what_to_install(tiny_weights):
    code = (
        "import sys; sys.modules['fastapi'] = None; from sparse_rcnn import cli; "
        f"sys.exit(cli.main(['serve', '--weights', {tiny_weights!r}]))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == ["ERROR fastapi is not installed: pip install 'sparse-rcnn[serve]'"]
