"""Watched worker processes: converted videos in job order (`video_results`).

The workers are spawned processes that run `_worker_main` by reference, so it must stay
importable as `tsn_keras.convert.workers._worker_main`. They import this package but never
TensorFlow: no module of the package imports it at module level (the parent's shard writer
imports it inside its functions). Why the pool is our own and not multiprocessing.Pool:
`_WorkerPool` and docs/converter-reliability.md.
"""

from __future__ import annotations

import collections
import contextlib
import multiprocessing
import multiprocessing.connection
import os
import signal
import time
import traceback
from collections.abc import Iterator, Sequence

import cv2

from tsn_keras.convert.flow_batches import flow_batches
from tsn_keras.convert.progress import warn
from tsn_keras.convert.snippets import (
    ConvertConfig,
    Engines,
    PendingFlow,
    VideoJob,
    VideoResult,
    convert_video,
)

# Test-only hook (tests/test_convert.py), read only in worker processes, never in the calling
# process: "<video path>" makes the worker SIGKILL itself when it starts on that video, as the
# out-of-memory killer would; "<video path>,<marker file>" does so only while the marker file
# does not exist (the worker creates it first), i.e. once.
KILL_WORKER_ENV = "TSN_KERAS_TEST_KILL_WORKER"


def _test_kill_hook(path: str) -> None:
    value = os.environ.get(KILL_WORKER_ENV)
    if not value:
        return
    target, _, marker = value.partition(",")
    if path != target:
        return
    if marker:
        if os.path.exists(marker):
            return
        open(marker, "w").close()
    os.kill(os.getpid(), signal.SIGKILL)


def _worker_main(conn, config: ConvertConfig, threads: int) -> None:
    """A worker process: receives jobs on `conn`, sends back ("ok", result) or ("error", text)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the parent stops the workers
    cv2.setNumThreads(threads)
    engines = Engines(config, decode_threads=threads)
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):  # the parent is gone (killed)
            return
        if job is None:
            return
        _test_kill_hook(job.path)
        try:
            # tvl1_tensor's pairs go back unsolved: the parent owns the solver (flow_batches)
            message = ("ok", convert_video(job, config, engines, solve_flow=False))
        except Exception:  # a bug, not a bad video: the parent stops the run with this text
            message = ("error", traceback.format_exc())
        try:
            conn.send(message)
        except OSError:  # the parent is gone
            return


def video_results(
    jobs: Sequence[VideoJob], config: ConvertConfig, workers: int
) -> Iterator[VideoResult]:
    """Converted videos in job order (in-process with one worker, else `_WorkerPool`), their
    tvl1_tensor flow pairs solved in this process, batched across videos (`flow_batches`)."""
    if workers <= 1:
        engines = Engines(config)
        pending = (convert_video(job, config, engines, solve_flow=False) for job in jobs)
        yield from flow_batches(pending, config)
        return
    pool = _WorkerPool(config, workers)
    try:
        yield from flow_batches(pool.run(jobs), config)
    finally:
        pool.close()  # also on an error or Ctrl-C in the caller (generator close)


# Tries per video when its worker process dies (killed, crashed): the first in the worker that
# died, the retry in a fresh one.
WORKER_TRIES = 2
# Jobs each worker holds at a time (`_WorkerPool.run`).
PREFETCH = 2


class _WorkerPool:
    """`workers` spawned processes, each holding up to PREFETCH jobs, their deaths watched.

    multiprocessing.Pool replaces a worker that dies (kill -9, the out-of-memory killer) but
    loses its task, so `imap` waits forever. Here the parent knows which jobs each process holds
    and waits on the processes' sentinels as well as their pipes: a death is seen at once, the
    job goes to a fresh process once more, and a second death makes it a failed video
    ("worker died (signal 9) while converting <path>"). Spawn, not fork: the parent may hold
    TensorFlow state. One OpenCV thread per worker: the workers already fill the cores.
    """

    def __init__(self, config: ConvertConfig, workers: int):
        self.config = config
        self.ctx = multiprocessing.get_context("spawn")
        self.procs: list = [self._start() for _ in range(workers)]  # [process, pipe] per slot

    def _start(self) -> list:
        parent, child = self.ctx.Pipe()
        proc = self.ctx.Process(target=_worker_main, args=(child, self.config, 1), daemon=True)
        proc.start()
        child.close()
        return [proc, parent]

    def _restart(self, slot: int) -> str:
        """Replaces a dead worker with a fresh one; returns how it died ("signal 9")."""
        proc, conn = self.procs[slot]
        proc.join()
        conn.close()
        self.procs[slot] = self._start()
        code = proc.exitcode
        return f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"

    def _send(self, slot: int, job: VideoJob) -> None:
        with contextlib.suppress(OSError):  # it died: its sentinel says so in `run`
            self.procs[slot][1].send(job)

    def _receive(self, slot: int):
        """The worker's next answer, or None when there is none (yet, or ever: it died)."""
        conn = self.procs[slot][1]
        try:
            return conn.recv() if conn.poll() else None
        except (EOFError, OSError):  # died while sending
            return None

    def run(self, jobs: Sequence[VideoJob]) -> Iterator[VideoResult | PendingFlow]:
        """Yields the results in job order.

        Each worker holds up to PREFETCH jobs (the next waits in its pipe, so the worker never
        idles while the parent writes) and converts them in order, so a dead worker was
        converting the oldest job it had not answered: that job is charged with the death; the
        others go back to the queue. Jobs more than 4 x workers past the next one to yield are
        not sent yet, which bounds the results waiting in the parent.
        """
        window = 4 * len(self.procs)
        todo = list(range(len(jobs)))[::-1]  # job indices, next last
        deaths = [0] * len(jobs)
        done: dict[int, VideoResult | PendingFlow] = {}
        held = [collections.deque() for _ in self.procs]  # per slot: job indices unanswered
        following = 0  # the next job index to yield
        while following < len(jobs):
            for slot, queue in enumerate(held):
                if not queue and not self.procs[slot][0].is_alive():  # died idle: none lost
                    self._restart(slot)
                while len(queue) < PREFETCH and todo and todo[-1] < following + window:
                    queue.append(todo.pop())
                    self._send(slot, jobs[queue[-1]])
            while following in done:
                yield done.pop(following)
                following += 1
            waits = {}
            for slot, queue in enumerate(held):
                if queue:
                    proc, conn = self.procs[slot]
                    waits[conn] = waits[proc.sentinel] = slot
            if not waits:  # all yielded, or the window moved on: send more
                continue
            for slot in {waits[w] for w in multiprocessing.connection.wait(list(waits))}:
                queue = held[slot]
                while queue and (message := self._receive(slot)) is not None:
                    index = queue.popleft()
                    status, value = message
                    if status == "error":
                        raise RuntimeError(f"worker failed on {jobs[index].path}:\n{value}")
                    done[index] = value
                if not queue or self.procs[slot][0].is_alive():
                    continue
                why = self._restart(slot)
                index = queue.popleft()  # the one it was converting
                todo = sorted([*todo, *queue], reverse=True)  # never started: not charged
                queue.clear()
                deaths[index] += 1
                job = jobs[index]
                if deaths[index] < WORKER_TRIES:  # once more, in the fresh worker of this slot
                    warn(f"worker died ({why}) while converting {job.path}; retrying it")
                    queue.append(index)
                    self._send(slot, job)
                else:
                    reason = f"worker died ({why}) while converting {job.path}"
                    done[index] = VideoResult(job, None, reason)

    def close(self) -> None:
        """Asks every worker to stop; kills those still busy after a second (an error, Ctrl-C)."""
        for _, conn in self.procs:
            with contextlib.suppress(OSError):
                conn.send(None)
        deadline = time.monotonic() + 1
        for proc, conn in self.procs:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():  # busy with a video the caller no longer wants
                proc.kill()
                proc.join()
            conn.close()
