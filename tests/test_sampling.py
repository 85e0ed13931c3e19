"""TSN segment sampling over the N stored snippets: golden indices, eagerly and in tf.data."""

import numpy as np
import pytest
import tensorflow as tf

from tsn_keras.sampling import sample_snippet_indices, segment_bounds


def _both_ways(fn):
    """fn() evaluated eagerly and inside tf.data.Dataset.map (graph mode)."""
    eager = fn().numpy()
    graph = next(iter(tf.data.Dataset.from_tensors(0).map(lambda _: fn()))).numpy()
    return eager, graph


@pytest.mark.parametrize(
    "n,k,expected",
    [
        (25, 3, [4, 12, 20]),  # tick 25/3: floor(4.17), floor(12.5), floor(20.8)
        (25, 25, list(range(25))),
        (10, 4, [1, 3, 6, 8]),  # (2k+1)*10 // 8
        (3, 5, [0, 0, 1, 2, 2]),  # N < K: snippets repeat
        (1, 3, [0, 0, 0]),
        (7, 1, [3]),
    ],
)
@pytest.mark.parametrize("mode", ["val", "test"])
def test_centre_indices_golden(n, k, expected, mode):
    for got in _both_ways(lambda: sample_snippet_indices(tf.constant(n), k, mode)):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(
    "n,k,lo,hi",
    [
        (25, 3, [0, 8, 16], [8, 16, 25]),
        (10, 4, [0, 2, 5, 7], [2, 5, 7, 10]),
        (3, 5, [0, 0, 1, 1, 2], [1, 1, 2, 2, 3]),  # narrower than a snippet: one snippet
    ],
)
def test_segment_bounds_golden(n, k, lo, hi):
    got_lo, got_hi = segment_bounds(n, k)
    np.testing.assert_array_equal(got_lo, lo)
    np.testing.assert_array_equal(got_hi, hi)


@pytest.mark.parametrize("n,k", [(25, 3), (10, 4), (3, 5), (1, 3), (8, 8)])
def test_train_draw_stays_in_its_segment(n, k):
    lo, hi = (t.numpy() for t in segment_bounds(n, k))
    seen = set()
    for s in range(50):
        idx = sample_snippet_indices(n, k, "train", seed=tf.constant([s, 7])).numpy()
        assert idx.shape == (k,)
        assert np.all(idx >= lo) and np.all(idx < hi), (idx, lo, hi)
        seen.add(tuple(idx))
    if n >= 2 * k:
        assert len(seen) > 1  # it is random across seeds


def test_train_is_deterministic_under_a_seed_eager_and_graph():
    seed = tf.constant([3, 4], tf.int64)
    eager, graph = _both_ways(lambda: sample_snippet_indices(25, 3, "train", seed=seed))
    np.testing.assert_array_equal(eager, graph)
    np.testing.assert_array_equal(eager, sample_snippet_indices(25, 3, "train", seed=seed).numpy())
    lo, hi = segment_bounds(25, 3)
    assert np.all(eager >= lo.numpy()) and np.all(eager < hi.numpy())


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(num_snippets=5, num_segments=3, mode="middle"), "mode"),
        (dict(num_snippets=5, num_segments=0, mode="val"), "num_segments"),
        (dict(num_snippets=5, num_segments=3, mode="train"), "seed"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sample_snippet_indices(**kwargs)
