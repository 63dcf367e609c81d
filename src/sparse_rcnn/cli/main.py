"""The ``sparse-rcnn`` command: parses, calls the library, prints, and maps errors to exit statuses.

Errors a user can fix (bad config key, unreadable image or checkpoint, bad annotations, bad
argument) are printed as one line and exit with status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys

from ..checkpoints import CheckpointError
from ..common import OutputError
from ..config import ConfigError
from ..data import DataError, ImageError
from ..deploy import GraphError, MissingPackageError, QuantizeError
from ..ops import keep_freed_memory
from ..video import MotFormatError, TrackEvalError, VideoError
from . import benchmark, dataset, evaluate, export, predict, quantize, serve, track, train, zoo
from .args import UsageError, as_flags

log = logging.getLogger("sparse_rcnn")
USER_ERRORS = (
    CheckpointError,
    ConfigError,
    DataError,
    ImageError,
    FileNotFoundError,
    UsageError,
    OutputError,
    GraphError,
    QuantizeError,
    MissingPackageError,
    VideoError,
    MotFormatError,
    TrackEvalError,
)


def one_line(e: BaseException) -> str:
    """The message of ``e`` on one line. An error raised in a DataLoader worker arrives re-raised
    with torch's wrapper text ("Caught DataError in DataLoader worker process 0. Original
    Traceback ..."): its last line is the original message."""
    text = str(e)
    if "Original Traceback" in text:
        last = text.rstrip().splitlines()[-1]
        text = re.sub(r"^[\w.]+: ", "", last, count=1)
    if isinstance(e, OSError) and e.filename:  # e.g. "out/model_final.pth: No space left on device"
        text = f"{e.filename}: {e.strerror}"
    return text.splitlines()[0] if text else type(e).__name__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sparse-rcnn", description="Sparse R-CNN object detection")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    zoo.add_parsers(sub)
    predict.add_parser(sub)
    export.add_parser(sub)
    quantize.add_parser(sub)
    evaluate.add_parser(sub)
    train.add_parsers(sub)
    benchmark.add_parser(sub)
    dataset.add_parsers(sub)
    serve.add_parser(sub)
    track.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr
    )
    args.malloc = "keep-freed" if keep_freed_memory() else "system"
    try:
        return args.func(args)
    except USER_ERRORS as e:
        log.error("%s", as_flags(one_line(e)))
        return 2
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    except BrokenPipeError:  # the reader went away, e.g. `sparse-rcnn predict DIR | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 1
    except OSError as e:  # permission denied, read-only file system, disk full: a fact about a path
        if not e.filename:
            raise
        log.error("%s", one_line(e))
        return 2


if __name__ == "__main__":
    sys.exit(main())
