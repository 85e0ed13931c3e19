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
