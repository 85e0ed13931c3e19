"""Synthetic dataset: real decodable videos, determinism, UCF101 split files, and the
appearance x motion property (RGB sees only colour, flow sees only direction)."""

import os
import re

import cv2
import numpy as np
import pytest

from tsn_keras import splits, synthetic

TINY = dict(
    classes=4, clips_per_class=3, width=32, height=24, fps=10.0, seconds=1.0, duration_jitter=0.0
)


def _decode(path):
    capture = cv2.VideoCapture(path)
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return np.stack(frames) if frames else np.zeros((0,), np.uint8)


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """Three tiny datasets: seed 0 twice (in different folders) and seed 1."""
    root = tmp_path_factory.mktemp("synthetic")
    return {
        name: synthetic.write_dataset(str(root / name), seed=seed, **TINY)
        for name, seed in (("a", 0), ("b", 0), ("c", 1))
    }


def test_videos_decode_to_requested_frames_and_size(datasets):
    summary = datasets["a"]
    assert summary["clips"] == 12 and summary["frames"] == 120
    for video in summary["videos"]:
        path = os.path.join(summary["out"], video["path"])
        frames = _decode(path)
        assert frames.shape == (10, 24, 32, 3), path
        assert video["frames"] == 10
        assert os.path.getsize(path) == video["bytes"]
    assert summary["bytes"] == sum(v["bytes"] for v in summary["videos"])


def test_same_seed_same_pixels_other_seed_other_pixels(datasets):
    a, b, c = datasets["a"], datasets["b"], datasets["c"]
    assert [v["path"] for v in a["videos"]] == [v["path"] for v in b["videos"]]
    for va, vb, vc in zip(a["videos"], b["videos"], c["videos"], strict=True):
        fa = _decode(os.path.join(a["out"], va["path"]))
        fb = _decode(os.path.join(b["out"], vb["path"]))
        fc = _decode(os.path.join(c["out"], vc["path"]))
        np.testing.assert_array_equal(fa, fb)
        assert np.abs(fa.astype(int) - fc.astype(int)).mean() > 5.0


def test_split_files_are_ucf101_format_with_crlf(datasets):
    summary = datasets["a"]
    split_dir = summary["split_dir"]
    texts = {}
    for name in ("classInd.txt", "trainlist01.txt", "testlist01.txt"):
        with open(os.path.join(split_dir, name), "rb") as f:
            data = f.read()
        assert data.endswith(b"\r\n") and data.count(b"\n") == data.count(b"\r\n"), name
        texts[name] = data.decode().split("\r\n")[:-1]
    assert texts["classInd.txt"] == [f"{i + 1} {n}" for i, n in enumerate(summary["classes"])]
    assert summary["classes"] == sorted(summary["classes"])
    train = [line.split(" ") for line in texts["trainlist01.txt"]]
    test = texts["testlist01.txt"]
    pattern = re.compile(r"^(\w+)/v_\1_g(\d\d)_c(\d\d)\.avi$")
    train_groups, test_groups = set(), set()
    for path, label in train:
        match = pattern.match(path)
        assert match and summary["classes"][int(label) - 1] == match[1]
        train_groups.add((match[1], match[2]))
    for path in test:
        match = pattern.match(path)
        assert match, path  # paths only, no label
        test_groups.add((match[1], match[2]))
    # Every class on both sides; a group never on both sides (as UCF101's splits).
    assert {g[0] for g in train_groups} == {g[0] for g in test_groups} == set(summary["classes"])
    assert not train_groups & test_groups
    assert (len(train), len(test)) == (summary["train"], summary["test"]) == (4, 8)


def test_split_files_read_back_with_splits(datasets):
    summary = datasets["a"]
    split = splits.load_split("ucf101", summary["out"])
    assert split.classes == summary["classes"]
    assert split.missing == []
    expected = {
        (os.path.join(summary["out"], v["path"]), v["label"], v["subset"])
        for v in summary["videos"]
    }
    got = {(p, label, "train") for p, label in split.train}
    got |= {(p, label, "test") for p, label in split.test}
    assert got == expected


@pytest.mark.parametrize(
    "classes, shape, some_name",
    [
        (2, (1, 2), "RedBlobMoveDown"),
        (8, (4, 2), "YellowBlobMoveUp"),
        (24, (12, 2), "TealBlobMoveDown"),
        (32, (8, 4), "PurpleBlobMoveDown"),
        (48, (12, 4), "TealBlobMoveUp"),
    ],
)
def test_class_grid(classes, shape, some_name):
    assert synthetic.grid_shape(classes) == shape
    grid = synthetic.class_grid(classes)
    names = [c.name for c in grid]
    assert len(set(names)) == classes and names == sorted(names) and some_name in names
    assert len({c.appearance for c in grid}) == shape[0]
    assert len({c.motion for c in grid}) == shape[1]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(classes=3), "classes must be an even number"),
        (dict(classes=50), "classes must be an even number"),
        (dict(classes=26), "multiple of 4"),
        (dict(clips_per_class=1), "clips_per_class must be >= 2"),
        (dict(seed=-1), "seed must be >= 0"),
        (dict(width=33), "width must be an even number"),
        (dict(height=8), "height must be an even number"),
        (dict(fps=0.0), "fps must be > 0"),
        (dict(seconds=0.01), "at least 1 frame"),
        (dict(duration_jitter=1.0), "duration_jitter must be in"),
        (dict(codec="h264"), "codec must be one of"),
        (dict(test_fraction=1.0), "test_fraction must be in"),
        (dict(jitter_fraction=2.0), "jitter_fraction must be in"),
    ],
)
def test_bad_parameters_are_named(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message) as info:
        synthetic.write_dataset(str(tmp_path / "out"), **{**TINY, **kwargs})
    assert "Received" in str(info.value)
    assert not (tmp_path / "out").exists()


def test_isoluminant_colours_give_identical_grayscale():
    """Flow is computed on grayscale frames: every colour must give the same gray video."""
    grid = [c for c in synthetic.class_grid(24) if c.motion == "Up"]
    for cls in grid:
        r, g, b = cls.rgb
        assert 0.299 * r + 0.587 * g + 0.114 * b == pytest.approx(150.0, abs=0.1)
        assert min(cls.rgb) >= 0 and max(cls.rgb) <= 255
    grays = []
    for cls in grid:
        clip = synthetic.render_clip(cls, 6, 48, 36, np.random.default_rng(3), camera_jitter=True)
        grays.append(np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in clip.frames]))
    for gray in grays[1:]:
        assert np.abs(gray.astype(int) - grays[0].astype(int)).max() <= 1


def _object_colour_and_motion(clip):
    """Mean RGB inside the blob, and the blob's mean x/y motion relative to the background
    measured with Farneback optical flow on the grayscale frames."""
    colour = clip.frames[clip.alpha > 0.99].mean(axis=0)
    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in clip.frames]
    motion = []
    for prev, nxt, alpha in zip(gray[:-1], gray[1:], clip.alpha[:-1], strict=True):
        flow = cv2.calcOpticalFlowFarneback(prev, nxt, None, 0.5, 2, 9, 3, 5, 1.1, 0)  # [H, W, 2]
        inside, outside = flow[alpha > 0.99], flow[alpha == 0.0]
        motion.append(inside.mean(axis=0) - np.median(outside, axis=0))
    return colour, np.mean(motion, axis=0)


def test_appearance_is_in_colour_and_motion_is_in_flow():
    grid = synthetic.class_grid(8)
    colours, motions = {}, {}
    for cls in grid:
        for seed in range(3):
            clip = synthetic.render_clip(
                cls, 10, 64, 48, np.random.default_rng(seed), camera_jitter=seed != 1
            )
            colour, motion = _object_colour_and_motion(clip)
            colours.setdefault(cls.appearance, {}).setdefault(cls.motion, []).append(colour)
            motions.setdefault(cls.motion, []).append(motion)
    # RGB: the object's colour tells the appearance classes apart ...
    means = {
        a: np.mean([c for m in by_m.values() for c in m], axis=0) for a, by_m in colours.items()
    }
    names = sorted(means)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert np.linalg.norm(means[a] - means[b]) > 40.0, (a, b)
    # ... but is the same whichever way the object moves.
    for appearance, by_motion in colours.items():
        up, down = np.mean(by_motion["Up"], axis=0), np.mean(by_motion["Down"], axis=0)
        np.testing.assert_allclose(up, down, atol=3.0, err_msg=appearance)
    # Flow: the sign of the object's vertical motion tells Up from Down, for every clip.
    assert all(m[1] < -0.5 for m in motions["Up"])
    assert all(m[1] > 0.5 for m in motions["Down"])
    assert all(abs(m[0]) < abs(m[1]) for m in motions["Up"] + motions["Down"])


def test_rerun_reuses_and_other_parameters_replace(tmp_path):
    out = str(tmp_path / "out")
    first = synthetic.write_dataset(out, **{**TINY, "classes": 2})
    path = os.path.join(out, first["videos"][0]["path"])
    mtime = os.stat(path).st_mtime_ns
    again = synthetic.write_dataset(out, **{**TINY, "classes": 2})
    assert again["reused"] and not first["reused"]
    assert os.stat(path).st_mtime_ns == mtime
    assert again["videos"] == first["videos"]
    fewer = synthetic.write_dataset(out, **{**TINY, "classes": 2, "clips_per_class": 2})
    assert not fewer["reused"] and fewer["clips"] == 4
    on_disk = sorted(
        os.path.relpath(os.path.join(d, f), out).replace(os.sep, "/")
        for d, _, files in os.walk(out)
        for f in files
        if f.endswith(".avi")
    )
    assert on_disk == sorted(v["path"] for v in fewer["videos"])


def test_refuses_a_folder_it_did_not_write(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        synthetic.write_dataset(str(tmp_path), **TINY)


def test_command_line(tmp_path, capsys):
    out = str(tmp_path / "cli")
    argv = ["synthetic", "--out", out, "--classes", "2", "--clips_per_class", "2"]
    argv += ["--width", "32", "--height", "24", "--fps", "10", "--seconds", "0.5"]
    assert synthetic.main(argv) == 0
    printed = capsys.readouterr().out
    assert "classes: 2 = 1 appearances (Red) x 2 motions (Up, Down)" in printed
    assert "clips: 4 (train 2, test 2)" in printed and "bytes" in printed
    assert synthetic.main(argv) == 0
    assert "reused" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--classes", "2"], "--out"),
        (["--out", "x", "--codec", "h264"], "--codec"),
        (["--out", "x", "--width", "wide"], "--width"),
        (["--out", "x", "--width", "31"], "width must be an even number"),
        (["--out", "x", "extra"], "unexpected arguments"),
    ],
)
def test_command_line_bad_flags_exit_2(tmp_path, capsys, argv, message):
    argv = [a.replace("x", str(tmp_path / "x")) if a == "x" else a for a in argv]
    assert synthetic.main(["synthetic", *argv]) == 2
    assert message in capsys.readouterr().err
