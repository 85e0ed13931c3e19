"""--flow tvl1_tensor: the flow pairs of consecutive videos solved together, in one process.

Workers (or the calling process, with one worker) decode each video, JPEG-encode its frames and
queue its flow pairs (`convert_video(..., solve_flow=False)` -> `PendingFlow`); the process that
writes the shards runs `flow_batches` over the results in job order. It owns the solver (and so
the GPU, where TensorFlow sees one: one process holds the accelerator, the workers never import
TensorFlow) and fills every solver call with pairs taken from as many videos as it takes. Each
video whose pairs are all solved is handed to a pool of threads that encode its flow JPEGs and
build its examples (`finish_video`; OpenCV's encoder releases the GIL), so the solver does not
wait on one core; the results still come out in job order.

Every call gets exactly `batch` pairs (`tvl1.preferred_batch()`: 32 on a GPU, 1 on a CPU; the
last call padded by repeating its last pair): one compiled program per frame size, and a pair's
flow does not depend on which pairs share its call or where it sits in it
(tests/test_tvl1.py checks it), so the records are the same bytes whatever the batching: a
rerun, a resumed run that redoes one shard, `--workers 1` or 4.

With `--short_side` the frame size follows each video's aspect ratio, and each size would
compile a program of its own (tens of seconds each). There the frames are padded (edge pixels
repeated) to the next multiple of SIZE_STEP on both sides and the flow is cropped back: at most
one program per SIZE_STEP of the long side (`padded_size`: for --short_side S and aspect ratios
up to r, at most ceil(r S / 32) - floor(S / 32) + 1 sizes per orientation; 13 for S = 256 and
r = 2.4), and videos of nearby sizes share calls. The padding moves the flow
a little (the padded border and pyramid: docs/flow_tvl1.md has the measured difference).
Fixed `--width` / `--height` give one size and are not padded.

The first call at each size compiles; the progress line says so (`Progress.note`).
"""

from __future__ import annotations

import collections
import concurrent.futures
import os
import time
from collections.abc import Iterable, Iterator

import numpy as np

from tsn_keras.convert.progress import Progress
from tsn_keras.convert.snippets import ConvertConfig, PendingFlow, VideoResult, finish_video

SIZE_STEP = 32  # --short_side: frame sides padded to a multiple of this (`padded_size`)


def padded_size(height: int, width: int, step: int = SIZE_STEP) -> tuple[int, int]:
    """The size a `height` x `width` pair is solved at with --short_side: each side rounded up
    to a multiple of `step`."""
    return -(-height // step) * step, -(-width // step) * step


def pad_pairs(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """[P, H, W] -> [P, *size], the last row and column repeated."""
    h, w = size
    return np.pad(a, ((0, 0), (0, h - a.shape[1]), (0, w - a.shape[2])), mode="edge")


class _Waiting:
    """A video in the queue and the flows of its pairs solved so far."""

    def __init__(self, item: VideoResult | PendingFlow):
        self.item = item
        # counted now: the encoder's `plan.finish` empties the plan's pending pairs, and a
        # `ready` read from them afterwards turned false and stopped the hand-over there
        self.pairs = len(item.plan.pending) if isinstance(item, PendingFlow) else 0
        self.flows: list[np.ndarray] = []
        self.future: concurrent.futures.Future | None = None

    @property
    def ready(self) -> bool:
        return len(self.flows) == self.pairs

    def result(self) -> VideoResult:
        item = self.item
        if not isinstance(item, PendingFlow):
            return item
        return finish_video(item.job, item.info, item.plan, np.stack(self.flows))


def _solver(config: ConvertConfig, batch: int):
    """(batch, solve): the preset's compiled solver on `batch` pairs (0: the device's choice).
    Imports Keras and its backend, so it is built only once a pair needs it."""
    from tsn_keras import tvl1

    batch = batch or tvl1.preferred_batch()
    settings = tvl1.settings_for(config.flow_preset)
    return batch, lambda a, b: tvl1.tvl1_flow(a, b, settings, batch, pad_to_batch=True)


def flow_batches(
    items: Iterable[VideoResult | PendingFlow],
    config: ConvertConfig,
    batch: int = 0,
    encoders: int = 0,
) -> Iterator[VideoResult]:
    """VideoResults in the order of `items`, each PendingFlow's pairs solved in calls of
    exactly `batch` pairs (0: `tvl1.preferred_batch()`) shared by consecutive videos of one
    solver size, its flow encoded by a pool of `encoders` threads (0: the cores, up to 8)."""
    queue: collections.deque[_Waiting] = collections.deque()
    firsts, seconds, owners = [], [], []  # unsolved pairs, and the video each belongs to
    solve = None
    compiled: set[tuple[int, int]] = set()  # solver sizes whose first call was made
    threads = encoders or min(os.cpu_count() or 1, 8)
    pool = concurrent.futures.ThreadPoolExecutor(threads)

    def run(count: int) -> None:
        a, b = np.stack(firsts[:count]), np.stack(seconds[:count])
        h, w = a.shape[1:]
        first_call, start = (h, w) not in compiled, time.monotonic()
        if first_call:
            Progress.note(f"TV-L1 {h}x{w}: compiling (first call)...")
        flows = solve(a, b)
        if first_call:
            compiled.add((h, w))
            Progress.note(f"TV-L1 {h}x{w} compiled: first call {time.monotonic() - start:.0f} s")
        for (owner, (h, w)), flow in zip(owners[:count], flows, strict=True):
            owner.flows.append(flow[:h, :w])  # the padding cropped off
        del firsts[:count], seconds[:count], owners[:count]

    def hand_over() -> None:  # videos whose pairs are all solved go to the encoders, in order
        for waiting in queue:
            if not waiting.ready:
                break
            if waiting.future is None:
                waiting.future = pool.submit(waiting.result)

    try:
        for item in items:
            waiting = _Waiting(item)
            queue.append(waiting)
            if isinstance(item, PendingFlow):
                if solve is None:
                    batch, solve = _solver(config, batch)
                a, b = item.plan.pending_pairs()
                size = a.shape[1:]
                if config.short_side is not None:
                    padded = padded_size(*size)
                    a, b = pad_pairs(a, padded), pad_pairs(b, padded)
                if firsts and firsts[0].shape != a.shape[1:]:  # another size: no shared call
                    run(len(firsts))
                firsts += list(a)
                seconds += list(b)
                owners += [(waiting, size)] * len(a)
                while len(firsts) >= batch:
                    run(batch)
            hand_over()
            # finished videos go out as soon as they are encoded; a backlog of encodings
            # (a fast solver) is waited for, so queued videos do not pile up in memory
            while queue and queue[0].future is not None:
                handed = sum(waiting.future is not None for waiting in queue)
                if not (queue[0].future.done() or handed > 2 * threads):
                    break
                yield queue.popleft().future.result()
        if firsts:
            run(len(firsts))
        hand_over()
        while queue:
            yield queue.popleft().future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
