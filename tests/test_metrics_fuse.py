"""Metrics and two-stream fusion on hand-made scores with hand-computed answers."""

import json
import subprocess
import sys

import numpy as np
import pytest

from tsn_keras import fuse, metrics

# Six videos, three classes, unbalanced: class 0 has four videos.
LABELS = np.array([0, 0, 0, 0, 1, 2])
# Predicts class 0 for the five first videos and class 2 for the last.
SCORES = np.array(
    [
        [3.0, 1.0, 0.0],
        [2.0, 0.0, 1.0],
        [5.0, 4.0, 0.0],
        [1.0, 0.0, 0.5],
        [2.0, 1.0, 0.0],  # true class 1 ranked second
        [0.0, 1.0, 2.0],
    ]
)


def test_mean_class_accuracy_differs_from_top1_on_unbalanced_classes():
    s = metrics.summarize(SCORES, LABELS)
    assert s["top1"] == pytest.approx(5 / 6)
    # Per class: 4/4, 0/1, 1/1 -> mean 2/3.
    np.testing.assert_allclose(s["per_class_accuracy"], [1.0, 0.0, 1.0])
    assert s["mean_class_accuracy"] == pytest.approx(2 / 3)
    assert s["top5"] == 1.0
    np.testing.assert_array_equal(s["confusion_matrix"], [[4, 0, 0], [1, 0, 0], [0, 0, 1]])


def test_top_k_and_missing_class():
    assert metrics.top_k_accuracy(SCORES, LABELS, 2) == pytest.approx(1.0)
    # Relabel video 3 as class 2, its second-ranked class: a top-1 miss, a top-2 hit.
    labels = np.array([0, 0, 0, 2, 1, 2])
    assert metrics.top_k_accuracy(SCORES, labels, 1) == pytest.approx(4 / 6)
    assert metrics.top_k_accuracy(SCORES, labels, 2) == pytest.approx(1.0)
    # A class with no test video is left out of the mean, not counted as 0.
    s = metrics.summarize(SCORES[:4], LABELS[:4])
    assert np.isnan(s["per_class_accuracy"][1])
    assert s["mean_class_accuracy"] == 1.0


@pytest.mark.parametrize(
    "scores,labels,match",
    [
        (np.zeros(3), np.zeros(3), "scores must be"),
        (np.zeros((3, 2)), np.zeros(2), "labels must be"),
        (np.zeros((3, 2)), np.array([0, 1, 2]), "labels must lie"),
    ],
)
def test_bad_shapes_raise(scores, labels, match):
    with pytest.raises(ValueError, match=match):
        metrics.summarize(scores, labels)


# Two streams over three videos, two classes; each stream gets one video wrong.
RGB = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
FLOW = np.array([[0.0, 1.0], [0.0, 1.0], [0.0, 3.0]])
LABELS2 = np.array([0, 1, 1])


@pytest.fixture
def score_files(tmp_path):
    ids = ["A/v1.avi", "B/v2.avi", "B/v3.avi"]
    rgb = tmp_path / "rgb.npz"
    flow = tmp_path / "flow.npz"
    fuse.save_scores(str(rgb), ids, LABELS2, RGB, ["A", "B"], "rgb")
    # The flow file lists the videos in another order: fuse must realign them.
    perm = [2, 0, 1]
    fuse.save_scores(
        str(flow), [ids[i] for i in perm], LABELS2[perm], FLOW[perm], ["A", "B"], "flow"
    )
    return str(rgb), str(flow)


def test_fusion_by_hand(score_files):
    rows, fused, ref = fuse.fuse_files(score_files)  # default weights 1 : 1.5
    sig = 1 / (1 + np.exp(-np.array([2.0, 1.0, 3.0])))  # softmax of a two-class gap
    expected = np.array(
        [
            [sig[0] + 1.5 * (1 - sig[1]), (1 - sig[0]) + 1.5 * sig[1]],
            [(1 - sig[1]) + 1.5 * (1 - sig[1]), sig[1] + 1.5 * sig[1]],
            [sig[1] + 1.5 * (1 - sig[2]), (1 - sig[1]) + 1.5 * sig[2]],
        ]
    )
    np.testing.assert_allclose(fused, expected, rtol=1e-6)
    names = [name for name, _ in rows]
    assert names == ["rgb", "flow", "fused 1:1.5"]
    accs = [s["top1"] for _, s in rows]
    assert accs == pytest.approx([2 / 3, 2 / 3, 1.0])
    assert list(ref["video_ids"]) == ["A/v1.avi", "B/v2.avi", "B/v3.avi"]


def test_fusion_weights_change_the_answer(score_files):
    # Weighting RGB 10:1 makes video 3 follow RGB (wrong) and video 1 RGB (right).
    rows, _, _ = fuse.fuse_files(score_files, [10, 1])
    assert rows[-1][1]["top1"] == pytest.approx(2 / 3)


def test_fusion_rejects_mismatched_videos(tmp_path, score_files):
    other = tmp_path / "other.npz"
    fuse.save_scores(str(other), ["A/v1.avi", "B/v2.avi", "C/v9.avi"], LABELS2, FLOW, ["A", "B"])
    with pytest.raises(ValueError, match=r"different videos.*C/v9.avi"):
        fuse.fuse_files([score_files[0], str(other)])
    relabeled = tmp_path / "relabeled.npz"
    ids = ["A/v1.avi", "B/v2.avi", "B/v3.avi"]
    fuse.save_scores(str(relabeled), ids, np.array([1, 1, 1]), FLOW, ["A", "B"])
    with pytest.raises(ValueError, match="label of video A/v1.avi differs"):
        fuse.fuse_files([score_files[0], str(relabeled)])
    with pytest.raises(ValueError, match="one weight per scores file"):
        fuse.fuse_files(score_files, [1.0])


def test_fuse_command_line(tmp_path, score_files):
    out_json = tmp_path / "table.json"
    cmd = [sys.executable, "-m", "tsn_keras.fuse", "--scores", *score_files]
    cmd += ["--weights", "1", "1.5", "--json", str(out_json)]
    result = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert "fused 1:1.5" in result.stdout
    table = json.loads(out_json.read_text())
    assert table["fused 1:1.5"]["top1"] == 1.0 and table["rgb"]["top1"] == pytest.approx(2 / 3)
    bad = subprocess.run(
        [sys.executable, "-m", "tsn_keras.fuse", "--scores", score_files[0], "missing.npz"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0 and "missing.npz" in bad.stderr
