"""The exact median filter as a min / max selection network on whole images (`keras.ops`).

    from tsn_keras import median
    smooth = median.median_filter(flow_x, 5)   # [N, H, W] -> [N, H, W], as cv2.medianBlur

TV-L1 (`tsn_keras.tvl1`) runs OpenCV's 5x5 `medianBlur` on the flow before each outer
iteration. Sorting the 25 values of every window (`keras.ops.sort`) made it most of the
solver's time, and XLA on a CPU does not fuse a sort; 132 minimum / maximum operations on whole
images do the same selection and XLA fuses them (docs/flow_tvl1.md has the times). How the
plan is built: `median_network`.
"""

from __future__ import annotations

import functools
import itertools


def _ops():
    from keras import ops  # imported late: the converter's workers may not need Keras

    return ops


def pad_edge(x, r: int):
    """[N, H, W] -> [N, H+2r, W+2r], the edge pixels repeated (keras.ops.pad's "edge" mode is
    missing on the TensorFlow backend)."""
    ops = _ops()
    x = ops.concatenate([x[:, :1]] * r + [x] + [x[:, -1:]] * r, axis=1)
    return ops.concatenate([x[:, :, :1]] * r + [x] + [x[:, :, -1:]] * r, axis=2)


def _batcher_pairs(n: int) -> list[tuple[int, int]]:
    """Batcher's odd-even merge sort on n wires: comparators (i, j), i < j, min to i.

    Built for the next power of two; the comparators that touch the extra wires are dropped
    (those wires would hold +inf, so the comparators never swap).
    """
    size = 1 << max(n - 1, 0).bit_length()
    pairs, p = [], 1
    while p < size:
        k = p
        while k >= 1:
            for j in range(k % p, size - k, 2 * k):
                for i in range(min(k, size - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return [(i, j) for i, j in pairs if j < n]


def _keep_live(pairs, outputs) -> list[tuple[int, int, bool, bool]]:
    """Drops what no wire in `outputs` depends on: (i, j, want_min, want_max) per comparator."""
    live, kept = set(outputs), []
    for i, j in reversed(pairs):
        want_min, want_max = i in live, j in live
        if want_min or want_max:
            kept.append((i, j, want_min, want_max))
            live |= {i, j}
    return kept[::-1]


@functools.cache
def median_network(size: int):
    """The comparator plan of a size x size median; see `median_filter`.

    Returns (column_sort, row_sorts, candidates, final, output): `column_sort` sorts the `size`
    values of a column; `row_sorts[k]` sorts rank k of the columns across the window, kept
    only for the ranks `candidates` needs; `candidates` lists the (row rank, column rank) cells
    that can still be the median once rows and columns are sorted; `final` selects the median
    among them into wire `output`.
    """
    half = size * size // 2  # the median is the (half + 1)-th smallest, 0-based `half`
    # In a matrix sorted along rows and columns, cell (k, m) has (k+1)(m+1) cells <= it and
    # (size-k)(size-m) cells >= it: only cells where both counts are <= half + 1 can be the
    # median, and the `below` cells with more than half + 1 cells above them are under it.
    cells = [(k, m) for k in range(size) for m in range(size)]
    candidates = [c for c in cells if (c[0] + 1) * (c[1] + 1) <= half + 1
                  and (size - c[0]) * (size - c[1]) <= half + 1]  # fmt: skip
    below = sum((size - k) * (size - m) > half + 1 for k, m in cells)
    output = half - below
    # Every sorted-rows-and-columns 0/1 matrix: row k holds zeros[k] zeros, non-increasing in k.
    # A comparator network selects right on all inputs iff it does on these (0-1 principle),
    # so a comparator that never swaps on them never swaps at all and is dropped.
    shapes = [sorted(z, reverse=True)
              for z in itertools.combinations_with_replacement(range(size + 1), size)]  # fmt: skip
    pairs = _batcher_pairs(len(candidates))
    swaps = set()
    for zeros in shapes:
        wires = [int(m >= zeros[k]) for k, m in candidates]
        for index, (i, j) in enumerate(pairs):
            if wires[i] > wires[j]:
                wires[i], wires[j] = wires[j], wires[i]
                swaps.add(index)
    final = _keep_live([p for index, p in enumerate(pairs) if index in swaps], [output])
    sort = _batcher_pairs(size)
    ranks = sorted({k for k, _ in candidates})
    row_sorts = {k: _keep_live(sort, [m for r, m in candidates if r == k]) for k in ranks}
    return _keep_live(sort, range(size)), row_sorts, candidates, final, output


def _compare(wires: list, plan) -> list:
    """Runs a comparator plan of `_keep_live` on a list of tensors (min / max, elementwise)."""
    ops = _ops()
    wires = list(wires)
    for i, j, want_min, want_max in plan:
        a, b = wires[i], wires[j]
        if want_min:
            wires[i] = ops.minimum(a, b)
        if want_max:
            wires[j] = ops.maximum(a, b)
    return wires


def median_filter(x, size: int):
    """size x size median of [N, H, W] (edge pixels repeated), as cv2.medianBlur on float.

    A selection network of min / max (132 of them for 5x5; sorting the 25 values costs far
    more and XLA does not fuse a sort): sort each column of the window, shared by the windows
    that contain it; sort each rank of those columns across the window; then only 13 cells can
    still be the median, and a pruned Batcher network picks it (`median_network`). Exact, like
    a sort: min and max do not round.
    """
    if size == 1:
        return x
    column_sort, row_sorts, candidates, final, output = median_network(size)
    r = size // 2
    h, w = x.shape[1], x.shape[2]
    p = pad_edge(x, r)  # [N, H+2r, W+2r]
    columns = _compare([p[:, i : i + h] for i in range(size)], column_sort)  # by rank, W+2r wide
    rows = {k: _compare([columns[k][:, :, j : j + w] for j in range(size)], plan)
            for k, plan in row_sorts.items()}  # fmt: skip
    return _compare([rows[k][m] for k, m in candidates], final)[output]
