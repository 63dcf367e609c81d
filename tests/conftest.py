import functools
import http.server
import logging
import os
import threading

import pytest
import torch

from sparse_rcnn import cli
from tiny import save_tiny_checkpoint

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> str:
    """A tiny model's checkpoint (classes cat, dog, bird; test scale 64x48, milliseconds a forward)."""
    return str(
        save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pth", ["cat", "dog", "bird"], test_scale=(64, 48))
    )


@pytest.fixture
def run_cli(caplog):
    """Run the CLI in-process: ``run_cli(argv)`` -> (exit status, the logged error lines), checking
    that every error is one line without a traceback."""

    def run(argv: list[str]) -> tuple[int, list[str]]:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="sparse_rcnn"):
            rc = cli.main(argv)
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert all("Traceback" not in e and "\n" not in e for e in errors), errors
        return rc, errors

    return run


@pytest.fixture
def http_dir(tmp_path):
    """A localhost HTTP server over a fresh folder: (folder, base URL); shut down afterwards."""
    root = tmp_path / "srv"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
