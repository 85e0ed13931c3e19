"""Watched worker processes: answers in job order, each video under a time limit.

`WorkerPool` runs a picklable task (`ConvertTask` for the converter, `check_videos`'s for the
dataset check) in spawned processes. The workers run `_worker_main` by reference, so it must
stay importable as `tsn_keras.convert.workers._worker_main`. They import this package but never
TensorFlow: no module of the package imports it at module level (the parent's shard writer
imports it inside its functions). Why the pool is our own and not multiprocessing.Pool:
`WorkerPool` and docs/converter-reliability.md.
"""

from __future__ import annotations

import collections
import contextlib
import multiprocessing
import multiprocessing.connection
import multiprocessing.process
import os
import signal
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from typing import Any, Protocol

import cv2

from tsn_keras import video as video_lib
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

# Seconds one video may take in a worker before the worker is killed and the video listed as
# "timed out after N s" (--video_timeout; 0 = no limit). A 25-snippet TV-L1 conversion of a
# 10-minute 1080p video takes a few minutes on one core; an hour is reached only by a video
# whose reads never return or a decoder stuck in a loop.
DEFAULT_VIDEO_TIMEOUT = 3600.0

# Seconds to wait for a killed worker to exit before leaving it behind: a process blocked in an
# uninterruptible read (a hung network or FUSE mount) dies only when that read returns.
KILL_WAIT = 1.0


def stop_process(proc, kill: bool) -> bool:
    """Waits for a child process to exit (killing it first with `kill`), at most KILL_WAIT s.

    Returns whether it exited. One that did not is stuck in the kernel (an uninterruptible
    read): it is never joined, and removed from multiprocessing's children so that the
    interpreter's exit does not join it either.
    """
    if kill:
        proc.kill()
    proc.join(KILL_WAIT)
    if proc.is_alive():
        multiprocessing.process._children.discard(proc)
        return False
    return True


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


class Task(Protocol):
    """What a worker does with each job; pickled to the workers, `setup` run once in each."""

    def setup(self) -> None:
        """Per-process resources (flow engines), built in the worker."""

    def __call__(self, job: Any) -> Any:
        """The answer for one job; an exception is a bug that stops the run."""


class ConvertTask:
    """The converter's task: `convert_video` with one OpenCV/decoder thread per worker.

    Args:
      config: what to store.
      solve_flow: False (the local converter): tvl1_tensor's pairs go back unsolved, the parent
        owns the solver (`flow_batches`); True: solved in the worker (Beam).
      threads: OpenCV and decoder threads in the worker (1: the workers fill the cores).
    """

    def __init__(self, config: ConvertConfig, solve_flow: bool = False, threads: int = 1):
        self.config, self.solve_flow, self.threads = config, solve_flow, threads

    def setup(self) -> None:
        if self.threads:  # 0: OpenCV's default (cv2.setNumThreads(0) would mean none)
            cv2.setNumThreads(self.threads)
        self.engines = Engines(self.config, decode_threads=self.threads)

    def __call__(self, job: VideoJob) -> VideoResult | PendingFlow:
        _test_kill_hook(job.path)
        return convert_video(job, self.config, self.engines, solve_flow=self.solve_flow)


def _worker_main(conn, task: Task) -> None:
    """A worker process: receives jobs on `conn`, sends back ("ok", answer) or ("error", text)."""
    # Ctrl-C reaches the whole process group: the parent stops the workers itself. SIGTERM
    # keeps its default (exit): multiprocessing's exit handler terminates daemon workers with it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    task.setup()
    conn.send(("ready", None))  # the time limit of its first job starts now, not at spawn
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):  # the parent is gone (killed)
            return
        if job is None:
            return
        try:
            message = ("ok", task(job))
        except Exception:  # a bug, not a bad video: the parent stops the run with this text
            message = ("error", traceback.format_exc())
        try:
            conn.send(message)
        except OSError:  # the parent is gone
            return


def video_results(
    jobs: Sequence[VideoJob],
    config: ConvertConfig,
    workers: int,
    timeout: float = DEFAULT_VIDEO_TIMEOUT,
) -> Iterator[VideoResult]:
    """Converted videos in job order, their tvl1_tensor flow pairs solved in this process,
    batched across videos (`flow_batches`).

    Args:
      jobs: the videos.
      config: what to store.
      workers: worker processes (at least one: the time limit needs a process to kill).
      timeout: seconds per video (`WorkerPool`); 0 = no limit, and with workers <= 1 the videos
        are then converted in this process (OpenCV's default threads).
    """
    if not jobs:
        return
    if workers <= 1 and not timeout:
        engines = Engines(config)
        pending = (convert_video(job, config, engines, solve_flow=False) for job in jobs)
        yield from flow_batches(pending, config)
        return
    # one worker gets every core (OpenCV's and the decoder's default threads), as the
    # in-process conversion had; several share them, one thread each
    task = ConvertTask(config, threads=1 if workers > 1 else 0)
    pool = WorkerPool(task, max(1, workers), timeout)
    try:
        yield from flow_batches(pool.run(jobs, failed_video), config)
    finally:
        pool.close()  # also on an error or Ctrl-C in the caller (generator close)


def failed_video(job: VideoJob, reason: str) -> VideoResult:
    """The VideoResult of a video whose worker died twice or that timed out (`WorkerPool.run`)."""
    return VideoResult(job, None, reason)


# Tries per video when its worker process dies (killed, crashed): the first in the worker that
# died, the retry in a fresh one. A video that times out is not retried.
WORKER_TRIES = 2
# Jobs each worker holds at a time (`WorkerPool.run`).
PREFETCH = 2


def timed_out_text(timeout: float) -> str:
    """'timed out after 30 s': the failure reason of a video over its time limit."""
    return f"timed out after {timeout:g} s (--video_timeout)"


class WorkerPool:
    """`workers` spawned processes, each holding up to PREFETCH jobs, watched for deaths and
    for jobs over their time limit.

    multiprocessing.Pool replaces a worker that dies (kill -9, the out-of-memory killer) but
    loses its task, so `imap` waits forever; and it cannot stop a task that never returns. Here
    the parent knows which jobs each process holds and waits on the processes' sentinels and
    pipes with a deadline: a death is seen at once, the job goes to a fresh process once more,
    and a second death makes it a failed job ("worker died (signal 9) while converting
    <path>"); a job still running `timeout` seconds after its worker started it gets the worker
    killed and fails ("timed out after N s"). A killed worker that does not exit (blocked in an
    uninterruptible read) is left behind, never waited for, so neither the run nor Ctrl-C
    waits on it. Spawn, not fork: the parent may hold TensorFlow state.

    Args:
      task: what each worker does with a job (`Task`).
      workers: processes.
      timeout: seconds per job; 0 = no limit.
    """

    def __init__(self, task: Task, workers: int, timeout: float = DEFAULT_VIDEO_TIMEOUT):
        self.task, self.timeout = task, timeout
        self.ctx = multiprocessing.get_context("spawn")
        self.procs: list = [self._start() for _ in range(workers)]  # [process, pipe, ready]
        self.left_behind: list = []  # killed workers still blocked in the kernel

    def _start(self) -> list:
        parent, child = self.ctx.Pipe()
        proc = self.ctx.Process(target=_worker_main, args=(child, self.task), daemon=True)
        proc.start()
        child.close()
        return [proc, parent, False]  # ready: its task is set up (it said so)

    def _restart(self, slot: int, kill: bool = False) -> str:
        """Replaces a dead (or, with `kill`, a busy) worker with a fresh one; returns how the
        old one died ("signal 9")."""
        proc, conn, _ = self.procs[slot]
        self._stop(proc, kill)
        conn.close()
        self.procs[slot] = self._start()
        code = proc.exitcode
        return f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"

    def _stop(self, proc, kill: bool) -> None:
        if not stop_process(proc, kill):
            self.left_behind.append(proc)

    def _send(self, slot: int, job) -> None:
        with contextlib.suppress(OSError):  # it died: its sentinel says so in `run`
            self.procs[slot][1].send(job)

    def _receive(self, slot: int):
        """The worker's next answer, or None when there is none (yet, or ever: it died)."""
        conn = self.procs[slot][1]
        try:
            return conn.recv() if conn.poll() else None
        except (EOFError, OSError):  # died while sending
            return None

    def run(self, jobs: Sequence, failed: Callable[[Any, str], Any]) -> Iterator:
        """Yields the answers in job order; `failed(job, reason)` stands for a job whose worker
        died twice or that timed out.

        Each worker holds up to PREFETCH jobs (the next waits in its pipe, so the worker never
        idles while the parent writes) and works through them in order, so a dead worker was
        on the oldest job it had not answered: that job is charged with the death; the others
        go back to the queue. That job started when the worker sent its previous answer (or
        got the job, when it held none, or said it was ready, when it had just started): its
        deadline is `timeout` seconds later. Jobs more than 4 x workers past the next one to
        yield are not sent yet, which bounds the answers waiting in the parent.
        """
        window = 4 * len(self.procs)
        todo = list(range(len(jobs)))[::-1]  # job indices, next last
        deaths = [0] * len(jobs)
        done: dict[int, Any] = {}
        held = [collections.deque() for _ in self.procs]  # per slot: job indices unanswered
        started = [0.0] * len(self.procs)  # per slot: when its oldest held job started
        following = 0  # the next job index to yield
        while following < len(jobs):
            for slot, queue in enumerate(held):
                if not queue and not self.procs[slot][0].is_alive():  # died idle: none lost
                    self._restart(slot)
                while len(queue) < PREFETCH and todo and todo[-1] < following + window:
                    if not queue:
                        started[slot] = time.monotonic()
                    queue.append(todo.pop())
                    self._send(slot, jobs[queue[-1]])
            while following in done:
                yield done.pop(following)
                following += 1
            waits = {}
            for slot, queue in enumerate(held):
                if queue:
                    proc, conn, _ = self.procs[slot]
                    waits[conn] = waits[proc.sentinel] = slot
            if not waits:  # all yielded, or the window moved on: send more
                continue
            wait_s = None
            timed = [started[s] for s in set(waits.values()) if self.procs[s][2]]
            if self.timeout and timed:
                wait_s = max(0.0, min(timed) + self.timeout - time.monotonic())
            ready = multiprocessing.connection.wait(list(waits), wait_s)
            for slot in {waits[w] for w in ready}:
                queue = held[slot]
                while queue and (message := self._receive(slot)) is not None:
                    started[slot] = time.monotonic()
                    status, value = message
                    if status == "ready":
                        self.procs[slot][2] = True
                        continue
                    index = queue.popleft()
                    if status == "error":
                        raise RuntimeError(f"worker failed on {jobs[index].path}:\n{value}")
                    done[index] = value
                if not queue or self.procs[slot][0].is_alive():
                    continue
                why = self._restart(slot)
                index = queue.popleft()  # the one it was on
                todo = sorted([*todo, *queue], reverse=True)  # never started: not charged
                queue.clear()
                deaths[index] += 1
                job = jobs[index]
                if deaths[index] < WORKER_TRIES:  # once more, in the fresh worker of this slot
                    warn(f"worker died ({why}) while converting {job.path}; retrying it")
                    queue.append(index)
                    started[slot] = time.monotonic()
                    self._send(slot, job)
                else:
                    done[index] = failed(job, f"worker died ({why}) while converting {job.path}")
            if not self.timeout:
                continue
            now = time.monotonic()
            for slot, queue in enumerate(held):
                if queue and self.procs[slot][2] and now >= started[slot] + self.timeout:
                    self._restart(slot, kill=True)
                    index = queue.popleft()
                    todo = sorted([*todo, *queue], reverse=True)
                    queue.clear()
                    done[index] = failed(jobs[index], timed_out_text(self.timeout))

    def close(self) -> None:
        """Asks every worker to stop; kills those still busy after a second (an error, Ctrl-C).

        Returns within about 2 x KILL_WAIT seconds whatever the workers are blocked on.
        """
        for _, conn, _ in self.procs:
            with contextlib.suppress(OSError):
                conn.send(None)
        deadline = time.monotonic() + KILL_WAIT
        for proc, conn, _ in self.procs:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():  # busy with a job the caller no longer wants
                self._stop(proc, kill=True)
            conn.close()


class WindowFrames:
    """Which frames a timeline needs: windows of `length` frames start every `stride` frames,
    and each needs the frames `relative` (offsets in the window) names."""

    def __init__(self, stride: int, length: int, relative: AbstractSet[int]):
        self.stride, self.length, self.relative = stride, length, frozenset(relative)

    def __call__(self, index: int) -> bool:
        first = index - index % self.stride  # the latest window start at or before index
        starts = range(first, max(-1, index - self.length), -self.stride)
        return any(index - start in self.relative for start in starts)


def _decode_main(conn, path: str, resize) -> None:
    """The child of `ChildDecoder`: ("ready",), ("info", fps, declared), then, after the
    parent's selection, ("frame", index, (height, width), RGB or None) per frame, ("end",); or
    ("error", reason)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the parent stops this process
    try:
        conn.send(("ready",))  # the time limit starts now, not at spawn
        with video_lib.Decoder(path, threads=0) as decoder:
            conn.send(("info", decoder.fps, decoder.declared_frames))
            select = conn.recv()
            if select is None:
                return
            for index, frame in enumerate(decoder.frames()):
                rgb = video_lib.to_rgb(frame, resize) if select(index) else None
                conn.send(("frame", index, (frame.height, frame.width), rgb))
        conn.send(("end",))
    except video_lib.DecodeError as e:
        conn.send(("error", e.reason))
    except (EOFError, OSError):  # the parent is gone or stopped listening
        return


class ChildDecoder:
    """Decodes one video in a child process, so that a read that never returns can be stopped.

    The parent waits at most `timeout` seconds (0 = no limit) for each message: the metadata,
    then each frame; past that the child is killed (left behind if stuck in the kernel) and
    a DecodeError "timed out after N s" is raised. The timeline decodes through it: its videos
    are long, so the limit is on each wait for the decoder, not on the whole video.
    """

    def __init__(self, path: str, resize, timeout: float = DEFAULT_VIDEO_TIMEOUT):
        self.path, self.timeout = path, timeout
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_decode_main, args=(child, path, resize), daemon=True)
        self.proc.start()
        child.close()

    def _receive(self, limit: bool = True) -> tuple:
        if not self.conn.poll((self.timeout or None) if limit else None):
            raise video_lib.DecodeError(self.path, timed_out_text(self.timeout))
        try:
            message = self.conn.recv()
        except (EOFError, OSError):
            self.proc.join(KILL_WAIT)
            code = self.proc.exitcode
            how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            raise video_lib.DecodeError(self.path, f"the decoding process died ({how})") from None
        if message[0] == "error":
            raise video_lib.DecodeError(self.path, message[1])
        return message

    def info(self) -> tuple[float, int]:
        """(fps, declared frame count)."""
        self._receive(limit=False)  # ("ready",): spawning and imports are not the video's time
        _, fps, declared = self._receive()
        return fps, declared

    def frames(self, select: Callable[[int], bool]) -> Iterator[tuple[int, tuple[int, int], Any]]:
        """(index, decoded (height, width), RGB [H, W, 3] resized, or None when `select(index)`
        is false) for every frame that decodes."""
        self.conn.send(select)
        while (message := self._receive())[0] == "frame":
            yield message[1:]

    def close(self) -> None:
        """Stops the child (killed if still decoding; left behind if stuck in the kernel)."""
        with contextlib.suppress(OSError):
            self.conn.send(None)
        stop_process(self.proc, kill=self.proc.is_alive())
        self.conn.close()

    def __enter__(self) -> ChildDecoder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
