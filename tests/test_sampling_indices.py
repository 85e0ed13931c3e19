"""Golden frame indices for the snippets stored at conversion."""

import numpy as np
import pytest

from tsn_keras.sampling import snippet_frame_indices, snippet_starts


@pytest.mark.parametrize(
    "num_frames,num_snippets,length,expected",
    [
        (100, 4, 1, [12, 37, 62, 87]),  # tick 25: 12.5, 37.5, ...
        (100, 4, 5, [12, 36, 60, 84]),  # 96 valid starts, tick 24
        (10, 25, 1, [0, 0, 1, 1, 1, 2, 2, 3, 3, 3, 4, 4, 5, 5, 5, 6, 6, 7, 7, 7, 8, 8, 9, 9, 9]),
        (3, 2, 5, [0, 0]),  # shorter than the stack: one valid start
        (1, 3, 1, [0, 0, 0]),
        (25, 25, 1, list(range(25))),
    ],
)
def test_snippet_starts_golden(num_frames, num_snippets, length, expected):
    np.testing.assert_array_equal(snippet_starts(num_frames, num_snippets, length), expected)


def test_indices_clamp_to_last_frame():
    idx = snippet_frame_indices(3, 2, 5)
    np.testing.assert_array_equal(idx, [[0, 1, 2, 2, 2], [0, 1, 2, 2, 2]])
    idx = snippet_frame_indices(100, 4, 5)
    assert idx.shape == (4, 5)
    np.testing.assert_array_equal(idx[1], [36, 37, 38, 39, 40])


def test_dense_is_every_frame():
    idx = snippet_frame_indices(4, 0, 2)
    np.testing.assert_array_equal(idx, [[0, 1], [1, 2], [2, 3], [3, 3]])


@pytest.mark.parametrize("args", [(0, 3, 1), (10, -1, 1), (10, 3, 0)])
def test_bad_arguments_raise(args):
    with pytest.raises(ValueError, match="Received"):
        snippet_starts(*args)
