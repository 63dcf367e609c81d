"""The annotated video of ``predict VIDEO --save-vis``, drawn and encoded in a background thread.

The detector's thread only hands over each frame and its detections (``put``); a thread of its own
draws them (``FrameDrawer``) and encodes them (``VideoWriter``), in order, at most ``depth`` frames
behind, so that they overlap the next forward instead of following it. ``close`` waits for the
frames handed over and puts the file in place; an error of the thread (a full disk) is raised by
the next ``put`` or by ``close`` (the unfinished file is dropped), and ``abort`` drops the file.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from typing import Optional

from torch import Tensor

from .draw import FrameDrawer
from .writer import VideoWriter

_END = object()


class AnnotatedVideo:
    """``writer`` fed with ``drawer``'s drawings of the frames given to ``put``, from a thread."""

    def __init__(self, writer: VideoWriter, drawer: FrameDrawer, depth: int = 8) -> None:
        self.writer, self.drawer = writer, drawer
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._error: Optional[BaseException] = None
        self._ended = False  # closed or aborted
        self._thread = threading.Thread(target=self._run, name=f"write {writer.path.name}", daemon=True)
        self._thread.start()

    @property
    def frames(self) -> int:
        """Frames encoded so far."""
        return self.writer.frames

    def put(self, image: Tensor, det: dict[str, Tensor]) -> None:
        """Hand over one (3, H, W) uint8 frame and its detections (tensors kept as they are: they
        must not change afterwards). Blocks while ``depth`` frames wait."""
        self._send((image, det))

    def close(self) -> None:
        """Draw and encode the frames handed over, then put the file in place (idempotent)."""
        if self._ended:
            return
        try:
            if self._thread.is_alive():
                self._send(_END)
                self._thread.join()
            self._raise()
        except BaseException:  # the thread's error, or an interrupt while waiting for it
            self.abort()
            raise
        self._ended = True
        self.writer.close()

    def abort(self) -> None:
        """Stop at once and drop the file (idempotent)."""
        self._ended = True
        if self._error is None:
            self._error = _Aborted()
        while self._thread.is_alive():  # wake the thread up (it may wait for a frame) and let it end
            try:
                self._queue.put_nowait(_END)
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self._queue.get_nowait()
            self._thread.join(0.05)
        self.writer.abort()

    def _send(self, item) -> None:
        while True:
            self._raise()
            if self._ended:
                raise RuntimeError(f"{self.writer.path}: the annotated video is closed")
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _raise(self) -> None:
        if self._error is not None and not isinstance(self._error, _Aborted):
            error = self._error
            self.abort()  # the thread has ended: drop the unfinished file
            self._error = _Aborted()  # raised once
            raise error

    def _run(self) -> None:
        try:
            while self._error is None:
                item = self._queue.get()
                if item is _END:
                    return
                image, det = item
                self.writer.write(self.drawer.draw(image, det))
        except BaseException as e:  # noqa: BLE001 - handed to the detector's thread
            self._error = e
            while True:  # drain, so that a producer blocked on a full queue sees the error
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    return

    def __enter__(self) -> "AnnotatedVideo":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class _Aborted(Exception):
    """The thread was told to stop, or its error was already raised."""
