"""One training per output folder: an exclusive lock on ``output_dir/train.lock``.

The lock is the kernel's (``fcntl.flock``), so a run that is killed (SIGKILL, power loss)
releases it with its process and a stale lock never blocks the next run; the file keeps the
holder's pid and host for the message. Where ``fcntl`` does not exist (Windows) nothing is locked.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path
from typing import Iterator, Optional

from ..common import OutputError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]  # mypy types the name as the module; None: no locking

LOCK_NAME = "train.lock"


class RunLock:
    """Held from construction to ``release()`` (or the end of the process); ``folder`` None
    (processes other than the main one) holds nothing."""

    def __init__(self, folder: Optional[Path]) -> None:
        self._file = None
        if folder is None:
            return
        self.path = Path(folder) / LOCK_NAME
        self._file = open(self.path, "a+")
        if fcntl is None:
            return
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.seek(0)
            holder = self._file.read().strip() or "another process"
            self._file.close()
            self._file = None
            raise OutputError(
                f"{str(folder)!r} is in use by another training ({holder}); wait for it to end, or choose "
                "another `output_dir`"
            ) from None
        self._file.seek(0)
        self._file.truncate()
        self._file.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        self._file.flush()

    @contextlib.contextmanager
    def released_on_error(self) -> Iterator[None]:
        """Release the lock if the block raises (a constructor that fails keeps no lock)."""
        try:
            yield
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None  # closing releases the flock; the file stays (unlinking it would race)
