"""The dataset check (python -m tsn_keras.check_videos): one report row per problem, exit 0/1/2."""

import csv
import json
import os

import numpy as np
import pytest
from helpers import cut_file, write_index_first_mp4

from tsn_keras import check_videos, video


def _clip(path, frames, height=72, width=96):
    base = np.linspace(0, 255, height * width * 3).astype(np.uint8).reshape(height, width, 3)
    video.write_video(str(path), [np.roll(base, 2 * t, axis=1) for t in range(frames)])


def _zero_frames_mp4(src, dst):
    """An index-first mp4 cut just after its frame data starts: it opens, no frame decodes."""
    data = open(src, "rb").read()
    with open(dst, "wb") as f:
        f.write(data[: data.index(b"mdat") + 16])


# file name -> the problems it has (with --snippet_length 5, --min_side 64, --max_seconds 2)
EXPECTED = {
    "good.avi": set(),
    "text.avi": {"cannot_open"},
    "pipe.avi": {"cannot_open"},
    "truncated.mp4": {"count_mismatch"},
    "nothing.mp4": {"zero_frames"},
    "short.avi": {"too_short"},
    "tiny.avi": {"tiny"},
    "long.avi": {"too_long"},
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("check")
    a, b = root / "videos" / "A", root / "videos" / "B"
    a.mkdir(parents=True)
    b.mkdir()
    _clip(a / "good.avi", 20)
    (a / "text.avi").write_text("not a video\n" * 40)
    os.mkfifo(a / "pipe.avi")
    full = write_index_first_mp4(root / "full.mp4", 41, height=72, width=96)
    cut_file(full, b / "truncated.mp4", 0.3)
    _zero_frames_mp4(full, b / "nothing.mp4")
    _clip(b / "short.avi", 3)
    _clip(b / "tiny.avi", 20, height=24, width=32)
    _clip(b / "long.avi", 75)  # 3 s at 25 fps
    return root / "videos"


def _main(videos, report, *extra):
    argv = ["check_videos", "--dataset=folder", f"--video_root={videos}", f"--report={report}",
            "--workers=2", "--max_seconds=2", *extra]  # fmt: skip
    return check_videos.main(argv)


@pytest.mark.parametrize("exact", [False, True])
def test_every_problem_is_a_row(dataset, tmp_path, capsys, exact):
    report = tmp_path / "report.csv"
    assert _main(dataset, report, *(["--exact"] if exact else [])) == 1
    rows = list(csv.DictReader(open(report)))
    got = {name: set() for name in EXPECTED}
    for row in rows:
        got[os.path.basename(row["path"])].add(row["problem"])
        assert row["video_id"] == os.path.relpath(row["path"], dataset).replace(os.sep, "/")
    assert got == EXPECTED
    reasons = {os.path.basename(r["path"]): r["detail"] for r in rows}
    assert "not a regular file" in reasons["pipe.avi"]
    assert "not a video" in reasons["text.avi"]
    truncated = next(r for r in rows if r["path"].endswith("truncated.mp4"))
    assert truncated["declared_frames"] == "41"
    if exact:
        assert 1 <= int(truncated["decoded_frames"]) <= 0.3 * 41
        assert "of 41 declared frames" in truncated["detail"]
    else:
        assert truncated["decoded_frames"] == "" and "frames end at" in truncated["detail"]
    out, err = capsys.readouterr()
    assert out.strip().splitlines()[-1].startswith("checked 8 videos in ")
    assert "7 with problems (cannot_open 2, zero_frames 1, count_mismatch 1, too_short 1, " \
        "tiny 1, too_long 1); report " in out  # fmt: skip
    assert "videos/s" in err and "ETA" in err and "with problems 7" in err


def test_a_clean_dataset_exits_0_with_an_empty_json_report(tmp_path, capsys):
    videos = tmp_path / "videos"
    (videos / "A").mkdir(parents=True)
    for i in range(3):
        _clip(videos / "A" / f"v{i}.avi", 10 + i)
    report = tmp_path / "report.json"
    assert _main(videos, report, "--noprogress") == 0
    assert json.loads(report.read_text()) == []
    out, err = capsys.readouterr()
    assert "checked 3 videos" in out and "0 with problems" in out and err == ""


def test_json_rows_and_bad_flags(dataset, tmp_path, capsys):
    report = tmp_path / "report.json"
    assert _main(dataset, report, "--noprogress", "--min_side=1", "--max_seconds=100") == 1
    rows = json.loads(report.read_text())
    assert {os.path.basename(r["path"]) for r in rows} == {
        "text.avi", "pipe.avi", "truncated.mp4", "nothing.mp4", "short.avi"
    }  # fmt: skip
    assert all(set(r) == set(check_videos.Problem.__dataclass_fields__) for r in rows)
    capsys.readouterr()
    assert _main(dataset, report, "--min_side=0") == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert check_videos.main(["check_videos", "--dataset=folder"]) == 2
