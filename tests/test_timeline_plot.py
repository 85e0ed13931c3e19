"""The timeline plot's legend: the classes that win windows, and no others."""

import numpy as np

from tsn_keras import timeline

CLASSES = tuple(f"class{c}" for c in range(7))


def _timeline(winners, runner_up=6):
    """Windows whose top class is `winners[i]` (0.6), `runner_up` close behind (0.3)."""
    probs = np.full((len(winners), len(CLASSES)), 0.1 / (len(CLASSES) - 2), np.float32)
    for i, c in enumerate(winners):
        probs[i, c], probs[i, runner_up] = 0.6, 0.3
    starts = np.arange(len(winners)) * 25
    return timeline.Timeline(
        "v.mp4", 25.0, 25 * len(winners) + 100, CLASSES, starts, starts + 100, probs,
        timeline.TimelineConfig(),
    )  # fmt: skip


def test_plotted_classes_are_the_winners_most_windows_first():
    result = _timeline([2, 2, 4, 2, 0, 4, 2])
    assert timeline.plotted_classes(result) == [2, 4, 0]  # class 6 scores 0.3 everywhere
    assert timeline.plotted_classes(result, max_classes=2) == [2, 4]
    assert timeline.plotted_classes(_timeline([5])) == [5]


def test_the_legend_has_a_row_per_winner_only():
    one, three = (
        timeline.render_plot(_timeline([3] * 4)),
        timeline.render_plot(_timeline([3, 1, 1, 5])),
    )
    assert one.shape[1] == three.shape[1] == 960
    assert three.shape[0] - one.shape[0] == 2 * 22  # two more legend rows of 22 px
    # one legend row: before, four classes that won nothing padded it to five
    assert one.shape[0] == 34 + 240 + 14 + 50 + 22 * 1 + 4
