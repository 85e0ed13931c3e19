"""Which snippets: frame indices stored at conversion, and TSN segment sampling.

Conversion stores N evenly spaced snippets per video (the test protocol's 25 by default).
A snippet is `length` consecutive frames starting at a start index; indices past the end of
the video clamp to its last frame, so short videos still give N full snippets.
"""

import numpy as np


def snippet_starts(num_frames: int, num_snippets: int, length: int = 1) -> np.ndarray:
    """Start frame of each of `num_snippets` evenly spaced snippets of `length` frames.

    This is the TSN test-time rule (tsn-pytorch `_get_test_indices`): the valid start range
    `num_frames - length + 1` is cut into `num_snippets` equal ticks and each snippet starts at
    the middle of its tick. A video shorter than `length` has one valid start, 0.

    Args:
      num_frames: frames that decoded (>= 1).
      num_snippets: snippets wanted (>= 1); 0 is not accepted here (dense = every frame).
      length: consecutive frames per snippet (1 for RGB, 5 for a flow stack).

    Returns:
      int64 array [num_snippets], non-decreasing, each in [0, max(num_frames - length, 0)].
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1. Received: num_frames={num_frames}")
    if num_snippets < 1:
        raise ValueError(f"num_snippets must be >= 1. Received: num_snippets={num_snippets}")
    if length < 1:
        raise ValueError(f"length must be >= 1. Received: length={length}")
    valid = max(num_frames - length + 1, 1)
    tick = valid / num_snippets
    starts = np.floor(tick / 2.0 + tick * np.arange(num_snippets)).astype(np.int64)
    return np.minimum(starts, valid - 1)


def snippet_frame_indices(num_frames: int, num_snippets: int, length: int = 1) -> np.ndarray:
    """Frame indices of every snippet: int64 [num_snippets, length], clamped to the last frame.

    `num_snippets=0` means dense: one snippet starting at every frame.
    """
    if num_snippets == 0:
        starts = np.arange(num_frames, dtype=np.int64)
    else:
        starts = snippet_starts(num_frames, num_snippets, length)
    idx = starts[:, None] + np.arange(length, dtype=np.int64)[None, :]  # [N, L]
    return np.minimum(idx, num_frames - 1)


# --- TSN segment sampling over the N stored snippets (tf, graph-safe) -------------------------
#
# At conversion every video keeps N evenly spaced snippets; training and testing then choose
# K of those N. The rules follow tsn-pytorch's TSNDataSet, with the N stored snippets in place
# of the video's frames:
#   train: the N snippets are cut into K equal segments (segment k covers the real interval
#          [k*N/K, (k+1)*N/K)); one snippet is drawn uniformly inside each segment.
#          Segment k holds snippets floor(k*N/K) .. floor((k+1)*N/K) - 1, so all N snippets are
#          used (tsn-pytorch drops the N mod K tail); when N < K a segment may be narrower than
#          one snippet and then holds exactly snippet floor(k*N/K) (snippets repeat).
#   val:   the centre of each segment, floor((2k + 1) * N / (2K)) (tsn-pytorch
#          `_get_val_indices`, int(tick / 2 + tick * k) with tick = N / K).
#   test:  K evenly spaced snippets by the same centre rule (tsn-pytorch `_get_test_indices`);
#          it differs from val only in intent (K = 25 at test time against K = num_segments).
# All arithmetic is integer, so the indices are exact; the random draw uses stateless ops and a
# [2] int seed, so the same seed gives the same indices eagerly and inside tf.data.

SAMPLING_MODES = ("train", "val", "test")


def segment_bounds(num_snippets, num_segments: int):
    """Half-open snippet range [lo, hi) of each of `num_segments` equal segments.

    Args:
      num_snippets: N, scalar int tensor or int (>= 1): snippets stored for the video.
      num_segments: K (>= 1).

    Returns:
      (lo, hi): int32 tensors [K]; hi > lo always (a segment narrower than one snippet holds
      the snippet it starts in).
    """
    import tensorflow as tf

    n = tf.cast(num_snippets, tf.int32)
    k = tf.range(num_segments, dtype=tf.int32)
    lo = (k * n) // num_segments  # [K]
    hi = tf.maximum(((k + 1) * n) // num_segments, lo + 1)  # [K]
    return lo, hi


def sample_snippet_indices(num_snippets, num_segments: int, mode: str, seed=None):
    """Which of the N stored snippets to use: int32 [K] indices in [0, N).

    Args:
      num_snippets: N, scalar int tensor or int (>= 1).
      num_segments: K (>= 1), static.
      mode: "train" (random snippet per segment), "val" (segment centres) or "test" (K evenly
        spaced; same rule as val).
      seed: for "train", an int32/int64 tensor of shape [2] (a stateless-random seed); required
        there, ignored otherwise.

    Returns:
      int32 tensor [K], non-decreasing.

    Raises:
      ValueError: unknown mode, K < 1, or a missing seed in train mode.
    """
    import tensorflow as tf

    if mode not in SAMPLING_MODES:
        raise ValueError(f"mode must be one of {SAMPLING_MODES}. Received: mode={mode!r}")
    if num_segments < 1:
        raise ValueError(f"num_segments must be >= 1. Received: num_segments={num_segments}")
    n = tf.cast(num_snippets, tf.int32)
    tf.debugging.assert_positive(n, message="a video must store at least one snippet")
    if mode == "train":
        if seed is None:
            raise ValueError("mode='train' needs a [2] int seed for stateless sampling.")
        lo, hi = segment_bounds(n, num_segments)
        u = tf.random.stateless_uniform([num_segments], seed=seed, dtype=tf.float32)
        offset = tf.cast(tf.floor(u * tf.cast(hi - lo, tf.float32)), tf.int32)
        return tf.minimum(lo + offset, hi - 1)
    k = tf.range(num_segments, dtype=tf.int32)
    return ((2 * k + 1) * n) // (2 * num_segments)
