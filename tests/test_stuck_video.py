"""No video can stall a run: the per-video time limit, Ctrl-C and SIGTERM while workers work.

A file whose reads never return is served by a FUSE file system (tests/stuck_fuse.py); the
tests that need it skip only where FUSE cannot mount (no usable /dev/fuse, no fusepy).
"""

import glob
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tsn_keras import convert, video

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class SleepTask:
    """A WorkerPool task: job (name, seconds) -> name after sleeping that long."""

    def setup(self) -> None:
        pass

    def __call__(self, job):
        name, seconds = job
        time.sleep(seconds)
        return name


@pytest.mark.parametrize("workers", [1, 2])
def test_a_job_over_the_time_limit_is_killed_and_the_rest_go_on(workers):
    jobs = [("a", 0), ("slow", 60), ("b", 0), ("c", 0.1)]
    pool = convert.WorkerPool(SleepTask(), workers, timeout=2)
    start = time.monotonic()
    try:
        got = list(pool.run(jobs, lambda job, reason: f"{job[0]}: {reason}"))
    finally:
        pool.close()
    assert got == ["a", "slow: timed out after 2 s (--video_timeout)", "b", "c"]
    assert time.monotonic() - start < 2 + 10  # the limit, plus spawning the workers


def _fuse_problem() -> str | None:
    """Why FUSE cannot be used here, or None."""
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse"
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        return "/dev/fuse is not readable and writable by this user"
    if not (shutil.which("fusermount3") or shutil.which("fusermount")):
        return "no fusermount (Debian package fuse3)"
    if importlib.util.find_spec("fuse") is None:
        return "fusepy is not installed (pip install fusepy)"
    return None


@pytest.fixture
def stuck(tmp_path_factory):
    """(path of stuck.mp4, its read log) on a FUSE mount; reads hang until teardown.

    One mount per test: libfuse 2 serves at most 10 requests at once, and every hung read
    (the kernel's read-ahead sends several per reader) holds one until teardown.
    """
    problem = _fuse_problem()
    if problem:
        pytest.skip(f"FUSE unusable: {problem}")
    root = tmp_path_factory.mktemp("fuse")
    mount, release, log = root / "mnt", root / "release", root / "reads.log"
    mount.mkdir()
    log.write_text("")
    server = subprocess.Popen(
        [sys.executable, os.path.join(REPO, "tests", "stuck_fuse.py"), mount, release, log],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 15
    while not os.path.ismount(mount) and server.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if not os.path.ismount(mount):
        server.kill()
        pytest.skip(f"FUSE unusable: the mount failed: {server.communicate()[1].strip()[-300:]}")
    try:
        yield str(mount / "stuck.mp4"), log
    finally:
        release.write_text("")  # the hung reads return (EIO); their killed readers exit
        fusermount = shutil.which("fusermount3") or shutil.which("fusermount")
        subprocess.run([fusermount, "-u", "-z", str(mount)], check=False)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _reads(log) -> int:
    return len(log.read_text().splitlines())


def _clips(root, count):
    """root/A/v<i>.avi: small moving-ramp clips (6 + i frames of 48x64)."""
    os.makedirs(root / "A", exist_ok=True)
    base = np.linspace(0, 255, 48 * 64 * 3).astype(np.uint8).reshape(48, 64, 3)
    for i in range(count):
        frames = [np.roll(base, 3 * t + i, axis=1) for t in range(6 + i)]
        video.write_video(str(root / "A" / f"v{i}.avi"), frames)


def _dataset_with_stuck(tmp_path, stuck_path, good=3):
    """videos/A/v*.avi (good clips) and videos/B/stuck.mp4 (a link to the FUSE file)."""
    videos = tmp_path / "videos"
    _clips(videos, good)
    (videos / "B").mkdir()
    os.symlink(stuck_path, videos / "B" / "stuck.mp4")
    return videos


def _cli(videos, out, *extra):
    return [
        sys.executable, os.path.join(REPO, "scripts", "make_tfrecords.py"), "--dataset=folder",
        f"--video_root={videos}", f"--out={out}", "--modalities=rgb", "--snippets=3",
        "--width=32", "--height=24", "--num_shards=1", "--noprogress", *extra,
    ]  # fmt: skip


def _start(cmd, folder, **popen):
    """Popen with stdout and stderr in files: a worker left stuck in the kernel inherits them,
    so pipes would stay open (and `communicate` wait) until its read returns."""
    out, err = open(folder / "stdout.txt", "w"), open(folder / "stderr.txt", "w")
    with out, err:
        return subprocess.Popen(cmd, stdout=out, stderr=err, text=True, **popen)


def _outputs(folder):
    return (folder / "stdout.txt").read_text(), (folder / "stderr.txt").read_text()


@pytest.mark.parametrize("workers", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_a_video_whose_reads_block_times_out_and_the_rest_convert(tmp_path, stuck, workers):
    path, _ = stuck
    videos = _dataset_with_stuck(tmp_path, path)
    out = tmp_path / "out"
    start = time.monotonic()
    proc = _start(_cli(videos, out, f"--workers={workers}", "--video_timeout=3"), tmp_path)
    returncode = proc.wait(timeout=120)
    elapsed = time.monotonic() - start
    stdout, stderr = _outputs(tmp_path)
    assert returncode == 1, stderr[-2000:]
    assert "1 failed" in stdout, stdout
    failures = (out / "failures.txt").read_text().splitlines()
    assert failures == [f"{videos / 'B' / 'stuck.mp4'}\ttimed out after 3 s (--video_timeout)"]
    sets = json.loads((out / "manifest.json").read_text())["sets"]  # the three good videos
    assert sets["train"]["num_examples"] + sets["test"]["num_examples"] == 3
    assert elapsed < 3 + 40, elapsed  # the limit, plus TensorFlow's import and the workers
    assert not glob.glob(str(out / "*.incomplete"))


def test_ctrl_c_ends_the_run_while_a_worker_is_stuck_in_a_read(tmp_path, stuck):
    path, log = stuck
    videos = _dataset_with_stuck(tmp_path, path, good=1)
    out = tmp_path / "out"
    reads = _reads(log)
    # the default limit (an hour): Ctrl-C must end it
    proc = _start(_cli(videos, out, "--workers=1"), tmp_path, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while _reads(log) == reads and time.monotonic() < deadline:
            assert proc.poll() is None, _outputs(tmp_path)
            time.sleep(0.05)
        assert _reads(log) > reads, "no worker read the stuck file"
        time.sleep(0.5)
        sent = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole group
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert time.monotonic() - sent < 5
    stdout, stderr = _outputs(tmp_path)
    assert proc.returncode == 130, stderr[-2000:]
    assert stderr.strip().splitlines()[-1] == (
        "error: interrupted; rerun the same command to resume"
    )
    assert "Traceback" not in stderr
    assert not glob.glob(str(out / "*.incomplete"))


def _state(pid: int) -> str:
    """The kernel's state letter of a process ("D": uninterruptible wait), "" once gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return ""


def test_a_killed_worker_stuck_in_the_kernel_is_left_behind(tmp_path, stuck):
    """SIGKILL does not end a read the FUSE server has taken: the pool does not wait for it."""
    path, _ = stuck
    _clips(tmp_path, 1)
    config = convert.ConvertConfig(("rgb",), num_snippets=2, width=32, height=24)
    jobs = [convert.VideoJob(path, "B/stuck.mp4", 1, "B"),
            convert.VideoJob(str(tmp_path / "A" / "v0.avi"), "A/v0.avi", 0, "A")]  # fmt: skip
    pool = convert.WorkerPool(convert.ConvertTask(config), 1, timeout=2)
    try:
        stuck_result, good = list(pool.run(jobs, convert.workers.failed_video))
        assert pool.left_behind, "the killed worker exited: the read was not stuck"
        assert _state(pool.left_behind[0].pid) == "D"
    finally:
        start = time.monotonic()
        pool.close()
        assert time.monotonic() - start < 3
    assert stuck_result.reason == "timed out after 2 s (--video_timeout)"
    assert good.examples is not None and good.num_frames == 6


def _shards(out):
    return {
        os.path.basename(f): open(f, "rb").read() for f in sorted(glob.glob(f"{out}/*.tfrecord"))
    }


@pytest.mark.slow
def test_sigterm_stops_cleanly_and_a_rerun_resumes(tmp_path):
    """SIGTERM (kill PID, a scheduler's stop) mid-run: exit 143, one clear line, no temporary
    files; the rerun gives the same shards as an uninterrupted run."""
    videos = tmp_path / "videos"
    _clips(videos, 12)
    full, stopped = tmp_path / "full", tmp_path / "stopped"
    args = ["--num_shards=6", "--workers=1", "--modalities=rgb,flow", "--flow=dis",
            "--width=160", "--height=120"]  # fmt: skip
    ref = subprocess.run(_cli(videos, full, *args), capture_output=True, text=True, timeout=300)
    assert ref.returncode == 0, ref.stderr[-2000:]
    proc = subprocess.Popen(
        _cli(videos, stopped, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while not glob.glob(str(stopped / "*-flow-*.tfrecord")) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.005)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, stderr[-2000:]
    assert stderr.strip().splitlines()[-1] == (
        "error: stopped by SIGTERM; rerun the same command to resume"
    )
    assert not glob.glob(str(stopped / "*.incomplete")) and not glob.glob(f"{stopped}/**/*.tmp")
    finished = len(glob.glob(str(stopped / "*-flow-*.tfrecord")))
    assert 1 <= finished < 12, "the run finished before SIGTERM: make the clips longer"
    rerun = subprocess.run(_cli(videos, stopped, *args), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"({finished} finished shards kept)" in rerun.stdout
    assert _shards(stopped) == _shards(full)


def test_the_dataset_check_lists_a_stuck_video_as_timed_out(tmp_path, stuck, capsys):
    from tsn_keras import check_videos

    path, _ = stuck
    videos = _dataset_with_stuck(tmp_path, path, good=2)
    report = tmp_path / "report.csv"
    argv = ["check_videos", "--dataset=folder", f"--video_root={videos}", f"--report={report}",
            "--workers=1", "--video_timeout=2", "--min_side=1", "--noprogress"]  # fmt: skip
    assert check_videos.main(argv) == 1
    lines = report.read_text().splitlines()
    assert len(lines) == 2 and lines[1].startswith(
        f"{videos / 'B' / 'stuck.mp4'},B/stuck.mp4,timed_out,timed out after 2 s"
    )
    assert "1 with problems (timed_out 1)" in capsys.readouterr().out


@pytest.mark.slow
def test_beam_lists_a_stuck_video_as_timed_out(tmp_path, stuck):
    pytest.importorskip("apache_beam", reason="the beam extra: pip install '.[beam]'")
    from tsn_keras import beam

    path, _ = stuck
    _clips(tmp_path, 2)
    jobs = [convert.VideoJob(str(tmp_path / "A" / f"v{i}.avi"), f"A/v{i}.avi", 0, "A")
            for i in range(2)] + [convert.VideoJob(path, "B/stuck.mp4", 1, "B")]  # fmt: skip
    config = convert.ConvertConfig(("rgb",), num_snippets=2, width=32, height=24)
    out = tmp_path / "out"
    report = beam.convert({"train": jobs}, str(out), config, ["A", "B"], 1, video_timeout=2)
    assert report.manifest["failures"] == [
        {"path": path, "reason": "timed out after 2 s (--video_timeout)", "subset": "train"}
    ]
    assert report.manifest["sets"]["train"]["num_examples"] == 2


def test_window_frames_are_the_frames_some_window_needs():
    """`WindowFrames` (what the timeline's decoding child converts) against the windows."""
    for stride, length, relative in [(3, 7, {0, 2, 6}), (5, 5, {0, 4}), (4, 2, {1})]:
        select = convert.WindowFrames(stride, length, relative)
        starts = range(0, 60, stride)
        want = {s + r for s in starts for r in relative}
        assert [i for i in range(60) if select(i)] == sorted(i for i in want if i < 60)


def test_the_timeline_decoder_times_out_on_a_stuck_read(stuck):
    from tsn_keras import timeline

    path, _ = stuck
    config = convert.ConvertConfig(("rgb",), num_snippets=2, width=32, height=24)
    stream = timeline.WindowStream(
        path, config, timeline.TimelineConfig(2.0, 1.0, 2), progress=False, video_timeout=2
    )
    start = time.monotonic()
    with pytest.raises(video.DecodeError, match=r"timed out after 2 s \(--video_timeout\)"):
        list(stream)
    assert time.monotonic() - start < 2 + 10  # the limit, the child's start and its kill
