"""predict --timeline: windows along a video, each scored exactly as predict scores a video cut
to it; the top class changes where the action does.

The video: a red blob for 3 s, then a green one for 3 s, over the same plain grey background
(synthetic.render_clip, lossless FFV1 so a cut copy holds the same pixels). The model: an
exported tiny TSN whose weights are set by hand so that its logits are, per snippet, a scaled
average of relu(G - R) (class 0, "GreenBlobMoveUp") and relu(R - G) (class 1, "RedBlobMoveUp")
over the crop: scores that depend on the snippet content in a known way, with no training.
"""

import csv
import dataclasses
import json
import os

import cv2
import keras
import numpy as np
import pytest

from tsn_keras import convert, export, predict, scoring, synthetic, timeline
from tsn_keras.models import TSNConfig, build_tsn

FPS = 25
WIDTH, HEIGHT = 64, 48
CUT = 75  # frames of red, then as many of green
CLASSES = ("GreenBlobMoveUp", "RedBlobMoveUp")  # label order: sorted names


def _write_ffv1(path, frames):
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"FFV1"), FPS, (WIDTH, HEIGHT))
    assert writer.isOpened()
    for rgb in frames:
        writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    writer.release()


def _colour_model() -> tuple[keras.Model, TSNConfig]:
    """The tiny TSN whose logits read the blob's colour (see the module docstring)."""
    config = TSNConfig(
        num_classes=2, modality="rgb", backbone="tiny", input_size=32, snippet_length=1,
        partial_bn=False, dropout=0.5,
    )  # fmt: skip
    keras.utils.set_random_seed(0)
    model = build_tsn(config)
    weights = {}
    conv1 = np.zeros((3, 3, 3, 8), np.float32)
    conv1[:, :, 0, 0], conv1[:, :, 1, 0] = 1 / 9, -1 / 9  # channel 0: mean(R - G) / 128
    conv1[:, :, 0, 1], conv1[:, :, 1, 1] = -1 / 9, 1 / 9  # channel 1: mean(G - R) / 128
    weights["tiny_conv1"] = conv1
    for name, cin, cout in (("tiny_conv2", 8, 16), ("tiny_conv3", 16, 32)):
        kernel = np.zeros((3, 3, cin, cout), np.float32)
        kernel[:, :, 0, 0] = kernel[:, :, 1, 1] = 1 / 9  # carry both channels on, averaged
        weights[name] = kernel
    found = {layer.name: layer for layer in _all_layers(model)}  # the backbone is nested
    for name, kernel in weights.items():
        layer = found[name]
        layer.kernel.assign(kernel)
        layer.bias.assign(np.zeros_like(layer.bias.numpy()))
        bn = found[f"{name}_bn"]  # identity: scale 1, shift 0, mean 0, variance 1 - eps
        bn.gamma.assign(np.ones(bn.gamma.shape, np.float32))
        bn.beta.assign(np.zeros(bn.beta.shape, np.float32))
        bn.moving_mean.assign(np.zeros(bn.moving_mean.shape, np.float32))
        bn.moving_variance.assign(np.full(bn.moving_variance.shape, 1 - 1e-5, np.float32))
    head = np.zeros((32, 2), np.float32)
    head[1, 0] = head[0, 1] = 200.0  # green evidence -> class 0, red evidence -> class 1
    found["classifier"].kernel.assign(head)
    found["classifier"].bias.assign(np.zeros(2, np.float32))
    return model, config


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("timeline")
    grid = {c.name: c for c in synthetic.class_grid(4)}
    rng = np.random.default_rng(0)
    grey = np.full_like(synthetic.make_background(WIDTH, HEIGHT, rng), 128.0)
    red = synthetic.render_clip(grid["RedBlobMoveUp"], CUT, WIDTH, HEIGHT,
                                np.random.default_rng(1), background=grey)  # fmt: skip
    green = synthetic.render_clip(grid["GreenBlobMoveUp"], CUT, WIDTH, HEIGHT,
                                  np.random.default_rng(1), background=grey)  # fmt: skip
    frames = np.concatenate([red.frames, green.frames])  # [150, H, W, 3]
    video = str(root / "red_then_green.avi")
    _write_ffv1(video, frames)
    model, config = _colour_model()
    conversion = dataclasses.asdict(
        convert.ConvertConfig(modalities=("rgb",), width=WIDTH, height=HEIGHT, snippet_length=1)
    )
    export_dir = export.export_saved_model(
        model, config, CLASSES, str(root / "export"), 3, conversion
    )
    scorer = scoring.load_scorer(export_dir)
    return {"root": root, "video": video, "frames": frames, "export": export_dir, "scorer": scorer}


SETTINGS = timeline.TimelineConfig(window_seconds=1.0, stride_seconds=0.4, num_segments=4)


@pytest.fixture(scope="module")
def scored(setup):
    return timeline.score_timeline(
        setup["video"], [setup["scorer"]], config=SETTINGS, progress=False
    )


def test_top_class_changes_at_the_cut(scored):
    result = scored
    # W = 25 frames, S = 10: every window that fits in 150 frames.
    np.testing.assert_array_equal(result.starts, np.arange(0, 130, 10))
    np.testing.assert_array_equal(result.ends, np.arange(0, 130, 10) + 25)
    assert (result.fps, result.num_frames, result.classes) == (FPS, 2 * CUT, CLASSES)
    top = [CLASSES[i] for i in np.argmax(result.probs, axis=1)]
    for start, end, name in zip(result.starts, result.ends, top, strict=True):
        if end <= CUT:
            assert name == "RedBlobMoveUp", (start, end)
        elif start >= CUT:
            assert name == "GreenBlobMoveUp", (start, end)
    first_green = top.index("GreenBlobMoveUp")
    centre = (result.starts[first_green] + result.ends[first_green]) / 2
    assert abs(centre - CUT) <= 12.5  # within half a window of the cut
    assert all(name == "GreenBlobMoveUp" for name in top[first_green:])
    np.testing.assert_allclose(result.probs.sum(axis=1), 1.0, atol=1e-6)
    segments = timeline.top_segments(result)
    assert [s[2] for s in segments] == ["RedBlobMoveUp", "GreenBlobMoveUp"]
    assert segments[0][0] == 0.0 and segments[-1][1] == 145 / FPS


def test_windows_stream_with_a_bounded_number_open(setup):
    config = convert.ConvertConfig(modalities=("rgb",), width=WIDTH, height=HEIGHT, num_snippets=4)
    stream = timeline.WindowStream(setup["video"], config, SETTINGS, progress=False)
    spans = [(start, end) for start, end, _ in stream]
    assert spans == [(s, s + 25) for s in range(0, 130, 10)]
    assert (stream.fps, stream.num_frames, stream.max_open) == (FPS, 150, 3)  # ceil(25 / 10)


def test_a_window_scores_as_predict_scores_the_video_cut_to_it(setup, scored, tmp_path):
    scorer, result = setup["scorer"], scored
    for i in (0, 6):  # a red window, and the one across the cut
        start, end = int(result.starts[i]), int(result.ends[i])
        cut = str(tmp_path / f"cut{i}.avi")
        _write_ffv1(cut, setup["frames"][start:end])
        [alone] = predict.predict_videos([cut], [scorer], num_segments=4, crops=1, top=2)
        expected = np.zeros(2)
        for entry in alone["top5"]:
            expected[CLASSES.index(entry["label"])] = entry["score"]
        np.testing.assert_allclose(result.probs[i], expected, atol=1e-6)


def test_a_video_shorter_than_a_window_is_one_window(setup, tmp_path):
    scorer = setup["scorer"]
    short = str(tmp_path / "short.avi")
    _write_ffv1(short, setup["frames"][:20])  # 0.8 s < the 1 s window
    result = timeline.score_timeline(short, [scorer], config=SETTINGS, progress=False)
    assert (result.starts.tolist(), result.ends.tolist(), result.num_frames) == ([0], [20], 20)
    [alone] = predict.predict_videos([short], [scorer], num_segments=4, crops=1, top=2)
    assert CLASSES[int(np.argmax(result.probs[0]))] == alone["top5"][0]["label"] == "RedBlobMoveUp"
    np.testing.assert_allclose(result.probs[0].max(), alone["top5"][0]["score"], atol=1e-6)


def test_predict_timeline_command_writes_json_csv_png(setup, tmp_path, capsys):
    out = tmp_path / "tl"
    broken = tmp_path / "broken.avi"
    broken.write_text("not a video")
    argv = ["predict", setup["video"], str(broken), "--models", setup["export"], "--timeline",
            "--window_seconds=1", "--stride_seconds=0.4", "--num_segments=4", "--crops=1",
            "--top=2", f"--timeline_dir={out}"]  # fmt: skip
    assert predict.main(argv) == 1  # the broken video failed, the other was done
    printed = capsys.readouterr()
    assert "broken.avi\n  could not be read:" in printed.out
    segments = [line.split()[-3] for line in printed.out.splitlines() if "(max" in line]
    assert segments == ["RedBlobMoveUp", "GreenBlobMoveUp"]
    assert "red_then_green.avi: 6.0/6.0 s (100%)" in printed.err  # the progress line
    data = json.loads((out / "red_then_green.timeline.json").read_text())
    assert (data["fps"], data["num_frames"], data["window_seconds"]) == (25.0, 150, 1.0)
    windows = data["windows"]
    assert [(w["start"], w["end"]) for w in windows] == [(s / 25, (s + 25) / 25) for s in
                                                         range(0, 130, 10)]  # fmt: skip
    assert windows[0]["top"][0][0] == "RedBlobMoveUp"
    assert windows[-1]["top"][0][0] == "GreenBlobMoveUp"
    with open(out / "red_then_green.timeline.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["start", "end", "class_1", "score_1", "class_2", "score_2"]
    assert len(rows) == 1 + len(windows)
    for row, window in zip(rows[1:], windows, strict=True):
        assert (float(row[0]), float(row[1]), row[2]) == (
            window["start"], window["end"], window["top"][0][0]
        )  # fmt: skip
        assert float(row[3]) == pytest.approx(window["top"][0][1], abs=1e-6)
    image = cv2.imread(str(out / "red_then_green.timeline.png"))
    assert image is not None and image.shape[1] == 960
    assert not os.path.exists(out / "broken.timeline.json")


@pytest.mark.parametrize(
    "flag, message",
    [
        ("--window_seconds=0", "--window_seconds must be a number > 0"),
        ("--stride_seconds=nan", "--stride_seconds must be a number > 0"),
    ],
)
def test_bad_timeline_flags_name_the_flag(setup, capsys, flag, message):
    argv = ["predict", setup["video"], "--models", setup["export"], "--timeline", flag]
    assert predict.main(argv) == 2
    assert message in capsys.readouterr().err
