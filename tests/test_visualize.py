"""Pictures: confusion matrix (3, 101, 400 classes), per-class bars, colour-coded flow grid."""

import cv2
import numpy as np
import pytest

from tsn_keras import evaluate, metrics, scoring, visualize

VIRIDIS_LOW = visualize._viridis(np.array(0.0))
VIRIDIS_HIGH = visualize._viridis(np.array(1.0))


def _names(n):
    return [f"Class{i:03d}LongActionName" for i in range(n)]


def test_top_confusions_by_share_of_the_true_class():
    cm = np.array([[4, 0, 0], [1, 0, 0], [0, 2, 8]])
    pairs = visualize.top_confusions(cm, ["a", "b", "c"])
    assert [(p["true"], p["predicted"], p["count"], p["total"]) for p in pairs] == [
        ("b", "a", 1, 1),
        ("c", "b", 2, 10),
    ]
    assert pairs[0]["fraction"] == 1.0 and pairs[1]["fraction"] == pytest.approx(0.2)


def test_confusion_image_small_has_cells_normalised_per_class(tmp_path):
    cm = np.array([[4, 0, 0], [1, 0, 0], [0, 0, 1]])
    image = visualize.confusion_image(cm, ["a", "b", "c"])
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    # 3 classes -> 24 px cells; find the matrix by its first row: cell (0, 0) is 4/4 = 1.0.
    ys, xs = np.nonzero(np.all(image == VIRIDIS_HIGH, axis=-1))
    top, left = ys.min(), xs.min()
    # Cell (1, 0) holds 1/1 (class b's only video) -> also 1.0; cell (1, 1) is 0.
    assert np.array_equal(image[top + 24 + 12, left + 2], VIRIDIS_HIGH)
    assert np.array_equal(image[top + 24 + 12, left + 24 + 12], VIRIDIS_LOW)
    path = visualize.write_png(str(tmp_path / "cm.png"), image)
    assert cv2.imread(path).shape == image.shape


@pytest.mark.parametrize("n,cell,named", [(101, 11, True), (400, 3, False)])
def test_confusion_image_at_ucf101_and_kinetics_sizes(n, cell, named, tmp_path):
    rng = np.random.default_rng(0)
    cm = np.diag(rng.integers(5, 30, n)) + rng.poisson(0.05, (n, n))
    image = visualize.confusion_image(cm, _names(n))
    # The matrix is n x cell pixels square: count the viridis pixels of the diagonal column.
    assert n * cell <= image.shape[0] < n * cell + 500
    assert image.shape[1] > n * cell + 300  # colour bar and the list of confusions beside it
    # Readable: rows fit the names (>= 8 px) up to ~100 classes; beyond, ticks every 10th.
    assert (cell >= 8) == named
    path = visualize.write_png(str(tmp_path / f"cm{n}.png"), image)
    assert cv2.imread(path).shape == image.shape


def test_confusion_image_rejects_mismatched_names():
    with pytest.raises(ValueError, match="len\\(class_names\\) = 2"):
        visualize.confusion_image(np.zeros((3, 3), int), ["a", "b"])


def test_per_class_bars_one_row_per_class_worst_first():
    acc = np.array([1.0, 0.25, np.nan, 0.5])
    image = visualize.per_class_bars(acc, ["w", "x", "y", "z"])
    assert image.shape == (50 + 14 * 4 + 24, image.shape[1], 3)
    # Bar lengths follow accuracy, worst first: rows are x (25%), z (50%), w (100%), y (n/a).
    lengths = []
    for k in range(4):
        row = image[50 + 14 * k + 7]
        mean_line = np.all(row == (200, 0, 0), axis=-1)
        coloured = np.nonzero(((row.max(axis=-1) - row.min(axis=-1)) > 60) & ~mean_line)[0]
        lengths.append(len(coloured))
    assert lengths[0] < lengths[1] < lengths[2] and lengths[3] == 0
    assert abs(lengths[2] - 400) <= 2 and abs(lengths[0] - 100) <= 2


def test_flow_colours_follow_direction_and_magnitude():
    right = visualize.flow_to_rgb(np.full((2, 2), 5.0), np.zeros((2, 2)), 10.0)
    np.testing.assert_array_equal(right[0, 0], [127, 0, 0])  # red, half brightness
    left = visualize.flow_to_rgb(np.full((2, 2), -10.0), np.zeros((2, 2)), 10.0)
    np.testing.assert_array_equal(left[0, 0], [0, 255, 255])  # cyan, full brightness
    still = visualize.flow_to_rgb(np.zeros((2, 2)), np.zeros((2, 2)))
    assert still.max() == 0  # no motion is black


@pytest.mark.parametrize(
    "modality,channels,tiles", [("rgb", 3, 1), ("flow", 4, 3), ("rgbdiff", 9, 2)]
)
def test_input_grid_layout(modality, channels, tiles):
    b, k, s, gap = 2, 3, 16, 2
    clips = np.full((b, k, s, s, channels), 128, np.uint8)
    grid = visualize.input_grid(clips, modality, gap=gap)
    assert grid.shape == (b * (s + gap) - gap, k * (tiles * s + gap) - gap, 3)
    assert grid.dtype == np.uint8


def test_input_grid_flow_shows_colour_beside_x_and_y():
    s = 8
    clips = np.full((1, 1, s, s, 4), 128, np.uint8)
    clips[..., 0] = 228  # field 1: x = +100 (right), y = 0
    grid = visualize.input_grid(clips, "flow")
    assert grid.shape == (s, 3 * s, 3)
    colour, x, y = grid[:, :s], grid[:, s : 2 * s], grid[:, 2 * s :]
    assert colour[..., 0].min() > 150 and colour[..., 1:].max() == 0  # red: moving right
    assert np.all(x == 228) and np.all(y == 128)  # the raw channels as gray
    with pytest.raises(ValueError, match="B, K > 0"):
        visualize.input_grid(np.zeros((1, 0, s, s, 4), np.uint8), "flow")
    with pytest.raises(ValueError, match="modality must be one of .*Received: modality='depth'"):
        visualize.input_grid(clips, "depth")


def test_evaluate_writes_both_pictures(tmp_path):
    classes = tuple(_names(101))
    rng = np.random.default_rng(1)
    labels = np.arange(202) % 101
    scores = rng.normal(size=(202, 101)) + 3 * np.eye(101)[labels]
    result = {
        "video_ids": [f"v{i}" for i in range(202)],
        "labels": labels,
        "scores": scores,
        "summary": metrics.summarize(scores, labels),
        "videos_per_second": 1.0,
    }
    info = scoring.ModelInfo("rgb", "tiny", 32, 1, classes)
    paths = evaluate.write_outputs(result, info, str(tmp_path))
    confusion = cv2.imread(paths["confusion"])
    bars = cv2.imread(paths["per_class"])
    assert confusion.shape[0] >= 101 * 11 and confusion.shape[1] > 101 * 11
    assert bars.shape[0] == 50 + 14 * 101 + 24
