"""predict's arguments: video files whose names begin with '-' (Kinetics' YouTube ids)."""

import pytest

from tsn_keras import predict

CLIP = "--33Lscn6sk_000004_000014.mp4"  # a real Kinetics-400 id, as its downloaders name it


def test_dashed_video_names_go_after_the_double_dash(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in (CLIP, "-0Bq9d3QGy4_000030_000040.MKV", "plain.mp4"):
        (tmp_path / name).write_bytes(b"")
    argv = ["predict", CLIP, "--models=m", "plain.mp4", "-0Bq9d3QGy4_000030_000040.MKV", "--top=3"]
    assert predict._dashed_videos_last(argv) == [
        "predict", "--models=m", "plain.mp4", "--top=3",
        "--", CLIP, "-0Bq9d3QGy4_000030_000040.MKV",
    ]  # fmt: skip
    # a flag stays a flag; a name that is not a file here is left for absl to refuse
    for argv in (["predict", "--json", "-"], ["predict", "-nofile.mp4"], ["predict", "-v"]):
        assert predict._dashed_videos_last(argv) == argv
    # after an existing `--` they join the names already there
    argv = ["predict", CLIP, "--models=m", "--", "a.mp4"]
    assert predict._dashed_videos_last(argv) == ["predict", "--models=m", "--", CLIP, "a.mp4"]


@pytest.mark.parametrize("name", [CLIP, f"./{CLIP}"])
def test_predict_takes_a_dashed_video_as_a_video(tmp_path, monkeypatch, capsys, name):
    monkeypatch.chdir(tmp_path)
    (tmp_path / CLIP).write_bytes(b"")
    # parsing gets past the video (the error is the model's, not an unknown flag)
    assert predict.main(["predict", "--models=nowhere", name]) == 2
    err = capsys.readouterr().err
    assert "nowhere/train_config.json not found" in err and "Unknown command line flag" not in err
    assert predict.main(["predict", "--models=nowhere", "-missing.mp4"]) == 2
    assert "Unknown command line flag 'missing.mp4'" in capsys.readouterr().err
