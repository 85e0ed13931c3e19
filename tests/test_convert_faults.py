"""Converter reruns after failures (--retry_failed) and its run flags' checks."""

import dataclasses

from test_convert import SMALL, _dataset, _Deadline, _jobs, _main, read_examples

from tsn_keras import convert


def test_a_rerun_keeps_failed_shards_and_retry_failed_converts_them_again(
    tmp_path, monkeypatch, capsys
):
    paths = _dataset(tmp_path / "videos", good=3, broken=False)
    jobs = {"train": _jobs(tmp_path / "videos", paths)}
    victim = paths["B"][1]
    out = str(tmp_path / "out")
    config = dataclasses.replace(SMALL, modalities=("rgb",))

    def run(**kwargs):
        with _Deadline(120):
            return convert.convert(jobs, out, config, ["A", "B"], 2, 2, progress=False, **kwargs)

    monkeypatch.setenv(convert.KILL_WORKER_ENV, victim)  # the worker dies twice on it
    first = run()
    assert [f["path"] for f in first.manifest["failures"]] == [victim]
    monkeypatch.delenv(convert.KILL_WORKER_ENV)  # the cause is gone (memory freed, say)
    kept = run()
    assert len(kept.skipped_shards) == 2 and kept.videos == 0
    assert [f["path"] for f in kept.manifest["failures"]] == [victim]
    retried = run(retry_failed=True)
    assert len(retried.skipped_shards) == 1 and retried.videos == 3  # only the victim's shard
    assert retried.manifest["failures"] == []
    stored = sorted(v for v, _ in read_examples(tmp_path / "out", "train"))
    assert stored == sorted(j.video_id for j in jobs["train"])


def test_the_command_says_how_to_retry_failed_videos(tmp_path, capsys):
    videos = tmp_path / "videos"
    _dataset(videos, good=1)  # and 4 broken files
    assert _main(videos, tmp_path / "out") == 1
    assert "add --retry_failed to convert them again" in capsys.readouterr().out
    assert _main(videos, tmp_path / "out", "--retry_failed") == 1  # still broken, retried
    out = capsys.readouterr().out
    assert "(0 finished shards kept)" in out and "--retry_failed to" not in out


def test_more_shards_than_videos_are_capped_at_one_video_each(tmp_path, capsys):
    videos = tmp_path / "videos"
    _dataset(videos, good=2, broken=False)  # 4 videos
    assert _main(videos, tmp_path / "out", "--num_shards=1000", "--test_fraction=0") == 0
    err = capsys.readouterr().err
    assert "warning: --num_shards=1000 > 4 train videos: writing 4 shards" in err
    assert sorted(p.name for p in (tmp_path / "out").glob("train-*")) == [
        f"train-rgb-{i:05d}-of-00004.tfrecord" for i in range(4)
    ]


def test_negative_run_flags_are_usage_errors(tmp_path, capsys):
    videos = tmp_path / "videos"
    _dataset(videos, good=1, broken=False)
    for flag in ("--workers=-1", "--num_shards=-2", "--num_shards_total=0"):
        assert _main(videos, tmp_path / "out", flag) == 2, flag
        err = capsys.readouterr().err
        assert err.startswith(f"error: {flag.split('=')[0]} must be >= "), err
    assert not (tmp_path / "out").exists()
