"""Dynamic batching: concurrent requests gathered into one forward, the model in one worker thread.

A request waits in a bounded queue (``max_queue``; beyond it ``QueueFull``). The collector takes the
oldest request and gathers up to ``max_batch`` requests whose resized, padded input has the same
shape as its own, waiting at most ``max_wait_ms`` for them. The detector answers each image
``independent``ly, bit-identical to the image's answer at batch 1 (as ``inference.iter_predictions``
does for files with ``pad="bucket"``), unless ``shared_forward``: then the batch is one forward,
equal to batch 1 up to float rounding (see ``SparseRCNN.detect_resized``). Others stay queued, in order,
for the next forward. The forward runs in a single worker thread, so the event loop stays free to accept and answer.
A request cancelled while queued (its deadline passed) is dropped before it reaches the model.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch

from ..data.resize import padded_size
from ..inference import Item
from ..models import Detector
from .settings import ModelFailed, QueueFull

log = logging.getLogger(__name__)


@dataclass
class _Waiting:
    item: Item
    shape: tuple[int, int]
    future: asyncio.Future


class DynamicBatcher:
    """Gathers ``detect`` calls into forwards of ``detector`` of up to ``max_batch`` same-shape images.

    ``on_batch(n)`` is called with the size of every forward. Use from one event loop: ``start``,
    then ``detect`` from any number of tasks, then ``close``."""

    def __init__(
        self,
        detector: Detector,
        *,
        max_batch: int,
        max_wait_ms: float,
        max_queue: int,
        shared_forward: bool = False,
        on_batch: Optional[Callable[[int], None]] = None,
    ) -> None:
        self.detector = detector
        self.max_batch, self.max_wait, self.max_queue = max_batch, max_wait_ms / 1000.0, max_queue
        self.on_batch, self.shared_forward = on_batch, shared_forward
        self._queue: deque[_Waiting] = deque()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="sparse-rcnn-model")
        self._wakeup: Optional[asyncio.Event] = None
        self._task: Optional[asyncio.Task] = None
        self._closing = False

    @property
    def depth(self) -> int:
        """Requests waiting for the model (not yet in a forward)."""
        return sum(1 for w in self._queue if not w.future.done())

    def start(self) -> None:
        self._wakeup = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._collect(), name="sparse-rcnn-batcher")

    async def run_in_worker(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` in the model's worker thread (warm-up, anything that must not race a forward)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def detect(self, item: Item) -> dict[str, torch.Tensor]:
        """The raw detections (CPU tensors ``boxes`` (k, 4) in the image's pixels, ``scores``,
        ``labels``; no score threshold) of one prepared ``item``. Raises ``QueueFull`` when
        ``max_queue`` requests are already waiting, ``ModelFailed`` when the forward raised."""
        if self._task is None or self._closing:
            raise QueueFull("the service is shutting down", headers={"Retry-After": "1"})
        if self.depth >= self.max_queue:
            raise QueueFull(
                f"too many requests waiting ({self.max_queue}); retry shortly", headers={"Retry-After": "1"}
            )
        assert item.resized is not None, "a prepared item without an error has its resized image"
        shape = padded_size([(item.resized.shape[-2], item.resized.shape[-1])], self.detector.size_divisor)
        future = asyncio.get_running_loop().create_future()
        self._queue.append(_Waiting(item, shape, future))
        self._event().set()
        return await future

    async def close(self) -> None:
        """Answer what is queued, then stop the collector and the worker thread."""
        self._closing = True
        if self._task is not None:
            self._event().set()
            await self._task
        self._executor.shutdown(wait=True)

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._drop_cancelled()
            if not self._queue:
                if self._closing:
                    return
                self._event().clear()
                await self._event().wait()
                continue
            shape = self._queue[0].shape
            deadline = loop.time() + self.max_wait
            while not self._closing and self._count(shape) < self.max_batch and loop.time() < deadline:
                self._event().clear()
                try:
                    await asyncio.wait_for(self._event().wait(), deadline - loop.time())
                except asyncio.TimeoutError:
                    break
            batch = self._take(shape)
            if batch:
                await self._forward(batch)

    def _event(self) -> asyncio.Event:
        assert self._wakeup is not None, "start() the batcher first"
        return self._wakeup

    def _drop_cancelled(self) -> None:
        while self._queue and self._queue[0].future.done():
            self._queue.popleft()

    def _count(self, shape: tuple[int, int]) -> int:
        return sum(1 for w in self._queue if w.shape == shape and not w.future.done())

    def _take(self, shape: tuple[int, int]) -> list[_Waiting]:
        """Up to ``max_batch`` live requests of ``shape``, oldest first; the rest stay in order."""
        batch: list[_Waiting] = []
        rest: deque[_Waiting] = deque()
        for w in self._queue:
            if w.future.done():
                continue
            (batch if w.shape == shape and len(batch) < self.max_batch else rest).append(w)
        self._queue = rest
        return batch

    async def _forward(self, batch: list[_Waiting]) -> None:
        if self.on_batch is not None:
            self.on_batch(len(batch))
        try:
            dets = await self.run_in_worker(_detect, self.detector, [w.item for w in batch], self.shared_forward)
        except Exception as e:  # the model's failure is the batch's answer; the service goes on
            log.exception("the model failed on a batch of %d", len(batch))
            reason = str(e).strip().splitlines()[0] if str(e).strip() else ""
            failure = ModelFailed(f"the model failed: {type(e).__name__}" + (f": {reason}" if reason else ""))
            for w in batch:
                if not w.future.done():
                    w.future.set_exception(failure)
            return
        for w, det in zip(batch, dets):
            if not w.future.done():
                w.future.set_result(det)


def _detect(detector: Detector, items: list[Item], shared: bool) -> list[dict[str, torch.Tensor]]:
    """One forward (worker thread): raw detections as CPU tensors, in the order of ``items``."""
    images, factors = [], []
    for i in items:
        assert i.resized is not None and i.factor is not None, "only readable items reach the model"
        images.append(i.resized)
        factors.append(i.factor)
    with torch.no_grad():
        dets = detector.detect_resized(images, factors, independent=not shared)
    return [{k: torch.as_tensor(v).cpu() for k, v in det.items()} for det in dets]
