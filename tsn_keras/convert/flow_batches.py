"""--flow tvl1_tensor: the flow pairs of consecutive videos solved together, in one process.

Workers (or the calling process, with one worker) decode each video, JPEG-encode its frames and
queue its flow pairs (`convert_video(..., solve_flow=False)` -> `PendingFlow`); the process that
writes the shards runs `flow_batches` over the results in job order. It owns the solver (and so
the GPU, where TensorFlow sees one: one process holds the accelerator, the workers never import
TensorFlow) and fills every solver call with pairs taken from as many videos as it takes,
before it encodes each video's flow and builds its examples (`finish_video`).

Every call gets exactly `batch` pairs (`tvl1.preferred_batch()`: 32 on a GPU, 8 on a CPU; the
last call padded by repeating its last pair): one compiled program per frame size, and a pair's
flow does not depend on which pairs share its call or where it sits in it
(tests/test_tvl1.py checks it), so the records are the same bytes whatever the batching: a
rerun, a resumed run that redoes one shard, `--workers 1` or 4.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Iterator

import numpy as np

from tsn_keras.convert.snippets import ConvertConfig, PendingFlow, VideoResult, finish_video


class _Waiting:
    """A video in the queue and the flows of its pairs solved so far."""

    def __init__(self, item: VideoResult | PendingFlow):
        self.item = item
        self.flows: list[np.ndarray] = []

    @property
    def ready(self) -> bool:
        item = self.item
        return not isinstance(item, PendingFlow) or len(self.flows) == len(item.plan.pending)

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
    items: Iterable[VideoResult | PendingFlow], config: ConvertConfig, batch: int = 0
) -> Iterator[VideoResult]:
    """VideoResults in the order of `items`, each PendingFlow's pairs solved in calls of
    exactly `batch` pairs (0: `tvl1.preferred_batch()`) shared by consecutive videos of one
    frame size."""
    queue: collections.deque[_Waiting] = collections.deque()
    firsts, seconds, owners = [], [], []  # unsolved pairs, and the video each belongs to
    solve = None

    def run(count: int) -> None:
        a, b = np.stack(firsts[:count]), np.stack(seconds[:count])
        for owner, flow in zip(owners[:count], solve(a, b), strict=True):
            owner.flows.append(flow)
        del firsts[:count], seconds[:count], owners[:count]

    for item in items:
        waiting = _Waiting(item)
        queue.append(waiting)
        if isinstance(item, PendingFlow):
            if solve is None:
                batch, solve = _solver(config, batch)
            a, b = item.plan.pending_pairs()
            if firsts and firsts[0].shape != a.shape[1:]:  # another frame size: no shared call
                run(len(firsts))
            firsts += list(a)
            seconds += list(b)
            owners += [waiting] * len(a)
            while len(firsts) >= batch:
                run(batch)
        while queue and queue[0].ready:
            yield queue.popleft().result()
    if firsts:
        run(len(firsts))
    while queue:
        yield queue.popleft().result()
