"""Batched TV-L1 (tsn_keras.tvl1): building blocks against OpenCV, the solver against OpenCV's
DualTVL1 and the ground truth, batching, sizes, bad input, JAX, and `--flow tvl1_tensor` in the
converter (failures, resume, byte-identical reruns)."""

import dataclasses
import glob
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import tensorflow as tf

from tsn_keras import convert, flow, median, records, tvl1

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# a small budget: one compiled graph that tests can afford (a few seconds to compile)
SMALL = tvl1.TVL1Settings(num_scales=3, warps=3, outer_iterations=1, inner_iterations=20)


def _texture(height, width, seed=0, sigma=2.0):
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.uniform(0, 255, (height, width)).astype(np.float32), (0, 0), sigma)
    return (noise - noise.min()) / (noise.max() - noise.min()) * 255  # float [H, W]


def _moved(image, matrix):
    """`image` (float) warped by a 2x3 affine map of content; uint8 (first, second, truth flow)."""
    h, w = image.shape
    second = cv2.warpAffine(image, np.float32(matrix), (w, h), borderMode=cv2.BORDER_REFLECT)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    m = np.float32(matrix)
    truth = np.stack(
        [m[0, 0] * xs + m[0, 1] * ys + m[0, 2] - xs, m[1, 0] * xs + m[1, 1] * ys + m[1, 2] - ys],
        axis=-1,
    )  # [H, W, 2]: where each first-frame pixel went
    return np.round(image).astype(np.uint8), np.round(second).astype(np.uint8), truth


def _shift(dx, dy, h=48, w=64, seed=0):
    return _moved(_texture(h, w, seed), [[1, 0, dx], [0, 1, dy]])


def _rotation(degrees, h=48, w=64, seed=1):
    return _moved(_texture(h, w, seed), cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0))


def _epe(a, b, margin=8):
    d = (a - b)[..., margin:-margin, margin:-margin, :]
    return float(np.sqrt((d**2).sum(-1)).mean())


def _opencv(first, second):
    return cv2.optflow.DualTVL1OpticalFlow_create().calc(first, second, None)


# ---------------------------------------------------------------------------------------------
# Building blocks, eagerly, against the OpenCV functions they copy.


def test_pyramid_sizes_round_like_opencv():
    s = tvl1.TVL1Settings()
    assert tvl1.pyramid_sizes(256, 340, s) == [
        (256, 340), (205, 272), (164, 218), (131, 174), (105, 139)
    ]  # fmt: skip
    assert tvl1.pyramid_sizes(20, 20, s) == [(20, 20), (16, 16)]
    assert tvl1.pyramid_sizes(19, 100, s) == [(19, 100)]  # 15 px would be under 16
    shape = np.zeros((97, 131), np.float32)
    got = []
    for _ in range(4):
        shape = cv2.resize(shape, None, fx=0.8, fy=0.8, interpolation=cv2.INTER_LINEAR)
        got.append(shape.shape)
    assert tvl1.pyramid_sizes(97, 131, s)[1:] == got


def test_resize_matches_opencv_linear():
    image = _texture(37, 53, seed=3).astype(np.float32)
    sizes = tvl1.pyramid_sizes(37, 53, tvl1.TVL1Settings())
    (h, w), (sh, sw) = sizes[0], sizes[1]
    down = tvl1.resize_linear(
        image[None],
        tvl1.linear_resize_matrix(h, sh, 1 / 0.8),
        tvl1.linear_resize_matrix(w, sw, 1 / 0.8),
    )
    want = cv2.resize(image, None, fx=0.8, fy=0.8, interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(np.asarray(down)[0], want, atol=2e-3)
    up = tvl1.resize_linear(
        want[None],
        tvl1.linear_resize_matrix(sh, h, sh / h),
        tvl1.linear_resize_matrix(sw, w, sw / w),
    )
    want_up = cv2.resize(want, (w, h), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(np.asarray(up)[0], want_up, atol=2e-3)


@pytest.mark.parametrize("size", [3, 5])
def test_median_matches_opencv_median_blur(size):
    """The selection network is the exact median: on smooth values, on values with many ties
    (5 levels), and on frames smaller than the window."""
    rng = np.random.default_rng(4)
    for x in (
        rng.normal(size=(2, 23, 31)).astype(np.float32),
        rng.integers(0, 5, size=(2, 23, 31)).astype(np.float32),
        rng.normal(size=(1, 3, 4)).astype(np.float32),
    ):
        got = np.asarray(median.median_filter(x, size))
        for i in range(len(x)):
            np.testing.assert_array_equal(got[i], cv2.medianBlur(x[i], size))  # bit for bit
    got = tf.function(lambda t: median.median_filter(t, size), jit_compile=True)(x)  # fused
    np.testing.assert_array_equal(np.asarray(got)[0], cv2.medianBlur(x[0], size))


@pytest.mark.parametrize("size", [3, 5])
def test_median_network_selects_the_median_of_every_sorted_window(size):
    """The 0-1 principle, checked exhaustively: after the column and rank sorts every window is
    sorted along rows and columns, and the pruned network must pick the median of each such
    0/1 window (then it does for all values; the test above runs the whole plan)."""
    import itertools

    column_sort, row_sorts, candidates, final, output = median.median_network(size)
    half = size * size // 2
    for zeros in itertools.combinations_with_replacement(range(size + 1), size):
        window = np.array([[int(m >= z) for m in range(size)] for z in sorted(zeros)[::-1]])
        wires = [window[k, m] for k, m in candidates]
        for i, j, want_min, want_max in final:
            a, b = wires[i], wires[j]
            wires[i], wires[j] = (min(a, b) if want_min else a), (max(a, b) if want_max else b)
        assert wires[output] == np.sort(window.ravel())[half], window
    assert sum(a + b for *_, a, b in final) == (4 if size == 3 else 42)  # min/max ops kept


def test_gradients_and_divergence_are_opencvs():
    x = np.arange(12, dtype=np.float32).reshape(1, 3, 4) ** 2
    dx, dy = tvl1.centered_gradient(x)
    np.testing.assert_allclose(np.asarray(dx)[0, 0], [0.5, 2.0, 4.0, 2.5])  # edges: half a step
    np.testing.assert_allclose(np.asarray(dy)[0, :, 0], [8.0, 32.0, 24.0])
    fx, fy = tvl1.forward_gradient(x)
    assert np.asarray(fx)[0, :, -1].tolist() == [0, 0, 0] and np.asarray(fy)[0, -1].tolist() == [
        0, 0, 0, 0
    ]  # fmt: skip
    # divergence is minus the adjoint of the forward gradient: <grad u, p> = -<u, div p>,
    # for fields p that are 0 where the forward gradient is (last column of px, last row of py)
    rng = np.random.default_rng(7)
    u, px, py = (rng.normal(size=(1, 5, 6)).astype(np.float32) for _ in range(3))
    px[:, :, -1], py[:, -1] = 0, 0  # as the dual field always is: the gradient is 0 there
    gx, gy = (np.asarray(g) for g in tvl1.forward_gradient(u))
    div = np.asarray(tvl1.divergence(px, py))
    assert float((gx * px + gy * py).sum()) == pytest.approx(-float((u * div).sum()), abs=1e-4)


# ---------------------------------------------------------------------------------------------
# The solver.


@pytest.fixture(scope="module")
def pairs():
    """Four 48x64 pairs (two shifts, a rotation, a shift) and their true flow."""
    made = [
        _shift(1.5, -0.75),
        _shift(-2.25, 1.0, seed=2),
        _rotation(3.0),
        _shift(0.5, 0.5, seed=3),
    ]
    first, second, truth = (np.stack(x) for x in zip(*made, strict=True))
    return first, second, truth


@pytest.fixture(scope="module")
def small_flows(pairs):
    first, second, _ = pairs
    return tvl1.tvl1_flow(first, second, SMALL, batch_size=8)


def test_translation_is_recovered(pairs, small_flows):
    _, _, truth = pairs
    for i in (0, 1, 3):  # the shifts
        assert _epe(small_flows[i : i + 1], truth[i : i + 1]) < 0.1, i
    assert _epe(small_flows[2:3], truth[2:3]) < 0.15  # rotation: 3 degrees, up to 1.7 px


def test_agrees_with_opencv_tvl1(pairs, small_flows):
    first, second, truth = pairs
    for i in range(len(first)):
        ref = _opencv(first[i], second[i])
        assert _epe(small_flows[i : i + 1], ref[None]) < 0.1, i
        # both solvers are as close to the truth as each other
        assert (
            abs(_epe(ref[None], truth[i : i + 1]) - _epe(small_flows[i : i + 1], truth[i : i + 1]))
            < 0.05
        )


def test_a_pair_alone_equals_the_pair_inside_a_batch(pairs, small_flows):
    """Pairs do not interact (each one's stopping is its own); the graph compiled for another
    batch size rounds differently, so equal means within 1e-3 px, not bit for bit."""
    first, second, _ = pairs
    alone = tvl1.tvl1_flow(first[2:3], second[2:3], SMALL, batch_size=1)
    np.testing.assert_allclose(alone[0], small_flows[2], atol=1e-3)
    again = tvl1.tvl1_flow(first, second, SMALL, batch_size=8)
    np.testing.assert_array_equal(again, small_flows)  # the same batch: bit for bit


def test_a_pairs_flow_does_not_depend_on_its_neighbours_in_a_call(pairs, small_flows):
    """In one compiled batch size a pair gets the same bits at any place, beside any pairs:
    what lets the converter share solver calls between videos and still write the same
    bytes (convert.flow_batches)."""
    first, second, _ = pairs
    for order in ([3, 0, 2, 1], [2, 2, 0, 2]):
        got = tvl1.tvl1_flow(first[order], second[order], SMALL, batch_size=8)
        np.testing.assert_array_equal(got, small_flows[order])


def test_early_exit_saves_steps_not_bits(pairs, small_flows):
    """Fixed trip counts (every warp runs its whole budget, frozen pairs idle) give the bits
    the early-exiting loops give."""
    first, second, _ = pairs
    a, b = tvl1.check_pairs(first, second)
    fixed = tvl1.compiled_solver(SMALL, early_exit=False)(a, b)
    early = tvl1.compiled_solver(SMALL)(a, b)
    for x, y in zip(fixed, early, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    np.testing.assert_array_equal(np.asarray(early[0]), small_flows[:4])


def _assert_same_flow(a, b):
    """Another compiler rounds the sums differently; a pair may then stop one step sooner or
    later (epsilon), moving a few pixels by some 1e-3 px."""
    diff = np.abs(a - b)
    assert diff.max() < 0.01 and diff.mean() < 1e-5, (diff.max(), diff.mean())


@pytest.mark.slow
def test_xla_gives_the_plain_graphs_result(pairs, small_flows):
    """The default XLA program (tf.function(jit_compile=True)) computes what the plain
    TensorFlow graph computes."""
    first, second, _ = pairs
    graph = tvl1.tvl1_flow(first, second, SMALL, batch_size=8, jit=False)
    _assert_same_flow(small_flows, graph)


@pytest.mark.parametrize(
    "height,width",
    [
        (9, 7),
        pytest.param(2, 2, marks=pytest.mark.slow),
        pytest.param(16, 21, marks=pytest.mark.slow),
    ],
)
def test_tiny_frames(height, width):
    first, second, _ = _shift(1.0, 0.0, height, width)
    out = tvl1.tvl1_flow(first[None], second[None], SMALL)
    assert out.shape == (1, height, width, 2) and out.dtype == np.float32
    assert np.isfinite(out).all()
    if height >= 9:  # enough texture to see the motion
        assert 0.3 < float(np.median(out[..., 0])) < 1.5


@pytest.mark.slow
def test_odd_size_parity_against_opencv_and_truth():
    """97x131 (odd sides, 5 levels) with the `parity` preset."""
    first, second, truth = _rotation(2.0, 97, 131, seed=8)
    ours = tvl1.tvl1_flow(first[None], second[None], "parity")
    ref = _opencv(first, second)
    assert ours.shape == (1, 97, 131, 2)
    assert _epe(ours, ref[None]) < 0.05
    assert _epe(ours, truth[None]) < 0.15
    f, s, t = _shift(1.5, -0.75)
    assert _epe(tvl1.tvl1_flow(f[None], s[None], "parity"), t[None]) < 0.1


@pytest.mark.parametrize(
    "first,second,match",
    [
        (np.zeros((1, 8, 8), np.uint8), np.zeros((1, 8, 9), np.uint8), "one size"),
        (np.zeros((1, 8, 8, 3), np.uint8), np.zeros((1, 8, 8, 3), np.uint8), "grayscale"),
        (np.zeros((0, 8, 8), np.uint8), np.zeros((0, 8, 8), np.uint8), "empty batch"),
        (np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8), r"\[N, H, W\]"),
        (np.zeros((1, 1, 8), np.uint8), np.zeros((1, 1, 8), np.uint8), "2x2"),
        (np.zeros((1, 8, 8), bool), np.zeros((1, 8, 8), bool), "numbers"),
    ],
)
def test_bad_input_is_named(first, second, match):
    with pytest.raises(ValueError, match=match):
        tvl1.tvl1_flow(first, second, SMALL)


def test_settings_are_validated():
    with pytest.raises(ValueError, match="scale_step"):
        tvl1.TVL1Settings(scale_step=1.0)
    with pytest.raises(ValueError, match="warps"):
        tvl1.TVL1Settings(warps=0)
    with pytest.raises(ValueError, match="median"):
        tvl1.TVL1Settings(median=4)
    with pytest.raises(ValueError, match="pyramid"):
        tvl1.TVL1Settings(pyramid="gauss")
    with pytest.raises(ValueError, match="scale_step must be 0.5"):
        tvl1.TVL1Settings(pyramid="pyrdown")
    with pytest.raises(ValueError, match="warp"):
        tvl1.TVL1Settings(warp="gpu")
    with pytest.raises(ValueError, match="--flow_preset"):
        tvl1.settings_for("slow")
    assert set(tvl1.PRESETS) == set(flow.TVL1_PRESETS)
    assert tvl1.settings_for("parity", warps=2).warps == 2
    assert [tvl1.bucket_size(n) for n in (1, 2, 8, 9, 32, 33, 125)] == [1, 4, 8, 16, 32, 64, 128]


@pytest.mark.slow
def test_jax_backend_gives_the_tensorflow_result(tmp_path, pairs, small_flows):
    pytest.importorskip("jax")
    first, second, _ = pairs
    np.savez(tmp_path / "in.npz", first=first[:1], second=second[:1])
    code = (
        "import sys, numpy as np, keras\n"
        "from tsn_keras import tvl1\n"
        "assert keras.backend.backend() == 'jax'\n"
        "d = np.load(sys.argv[1])\n"
        f"s = tvl1.TVL1Settings(**{dataclasses.asdict(SMALL)!r})\n"
        "np.save(sys.argv[2], tvl1.tvl1_flow(d['first'], d['second'], s, batch_size=8))\n"
    )
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=REPO)
    subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "in.npz"), str(tmp_path / "out.npy")],
        env=env, check=True, timeout=600,
    )  # fmt: skip
    _assert_same_flow(np.load(tmp_path / "out.npy")[:1], small_flows[:1])


# ---------------------------------------------------------------------------------------------
# The converter with --flow tvl1_tensor: the same guarantees as the other algorithms.


def _write_pan(path, num_frames, dx, seed):
    base = (np.stack([_texture(48, 64, seed)] * 3, -1)).astype(np.uint8)
    from tsn_keras import video

    video.write_video(str(path), [np.roll(base, dx * t, axis=1) for t in range(num_frames)])
    return str(path)


def _convert_jobs(root):
    paths = []
    for label, name in enumerate(["A", "B"]):
        os.makedirs(root / name, exist_ok=True)
        for i in range(3):
            p = _write_pan(root / name / f"v{i}.avi", 5 + i, 1 + label, 10 * label + i)
            paths.append((p, label))
    (root / "A" / "empty.avi").write_bytes(b"")
    paths.append((str(root / "A" / "empty.avi"), 0))
    return convert.jobs_from_pairs(paths, ["A", "B"], str(root))


def _bytes(out):
    files = sorted(glob.glob(os.path.join(str(out), "*.tfrecord")))
    return {os.path.basename(f): open(f, "rb").read() for f in files}


@pytest.mark.parametrize("algorithm", ["dis", "tvl1_tensor"])
def test_converter_failures_resume_and_reruns(tmp_path, algorithm):
    jobs = {"train": _convert_jobs(tmp_path / "videos")}
    config = convert.ConvertConfig(
        modalities=("rgb", "flow"), flow_algorithm=algorithm, flow_preset="fast",
        num_snippets=2, snippet_length=2, width=32, height=24,
    )  # fmt: skip
    out = tmp_path / "out"
    first = convert.convert(jobs, str(out), config, ["A", "B"], 3, 1, progress=False)
    assert [os.path.basename(f["path"]) for f in first.manifest["failures"]] == ["empty.avi"]
    assert first.manifest["flow"]["algorithm"] == algorithm
    assert first.manifest["flow"].get("preset") == ("fast" if algorithm == "tvl1_tensor" else None)
    assert first.manifest["config"]["flow_preset"] == "fast"
    before = _bytes(out)
    # an interrupted run: one shard never renamed; the rerun redoes only it, byte for byte
    for m in ("rgb", "flow"):
        os.remove(out / f"train-{m}-00001-of-00003.tfrecord")
    again = convert.convert(jobs, str(out), config, ["A", "B"], 3, 1, progress=False)
    assert again.skipped_shards == [
        "train-00000-of-00003.tfrecord",
        "train-00002-of-00003.tfrecord",
    ]
    assert _bytes(out) == before
    # a fresh run elsewhere gives the same bytes, with 2 worker processes too (tvl1_tensor:
    # they send their pairs to this process, which solves them in calls shared by videos)
    fresh = convert.convert(jobs, str(tmp_path / "out2"), config, ["A", "B"], 3, 1, progress=False)
    assert fresh.videos == 7 and _bytes(tmp_path / "out2") == before
    if algorithm == "tvl1_tensor":
        out3 = str(tmp_path / "out3")
        pool = convert.convert(jobs, out3, config, ["A", "B"], 3, 2, progress=False)
        assert pool.videos == 7 and _bytes(tmp_path / "out3") == before
    other = dataclasses.replace(config, flow_preset="parity")
    if algorithm == "tvl1_tensor":  # another preset is other data: that --out is refused
        with pytest.raises(ValueError, match="--out"):
            convert.convert(jobs, str(out), other, ["A", "B"], 3, 1, progress=False)
    else:  # the preset means nothing to DIS: same digest as before flow_preset existed
        assert other.digest() == config.digest()
        settings = dataclasses.asdict(config)
        settings.pop("flow_preset")
        settings.pop("min_decoded_fraction")  # also left out at its default (older folders)
        assert config.digest() == convert.digest(settings)


def test_the_settings_digest_follows_the_presets_solver_settings(monkeypatch):
    """A folder half made with a preset whose solver settings have since changed is not resumed
    with the new ones (`parity`'s budget once changed under the same name)."""
    config = convert.ConvertConfig(flow_algorithm="tvl1_tensor", flow_preset="fast")
    before = config.digest()
    # the config read back from a manifest (JSON) resumes: the same digest
    back = convert.ConvertConfig.from_dict(json.loads(json.dumps(dataclasses.asdict(config))))
    assert back.digest() == before
    fast = tvl1.PRESETS["fast"]
    monkeypatch.setitem(
        tvl1.PRESETS, "fast", dataclasses.replace(fast, inner_iterations=fast.inner_iterations + 1)
    )
    assert config.digest() != before
    monkeypatch.setitem(tvl1.PRESETS, "fast", dataclasses.replace(fast))
    assert config.digest() == before
    # (the other algorithms keep the digest they had: test_converter_failures_resume_and_reruns)


def test_flow_batches_share_solver_calls_between_videos(tmp_path, monkeypatch):
    """The converter's parent solves the queued pairs of consecutive videos in full calls
    (`flow_batches`); the examples are the bytes each video gets alone, in job order, and a
    failed video passes through in its place."""
    import copy
    import math
    import pickle

    from tsn_keras.convert.flow_batches import flow_batches

    config = convert.ConvertConfig(
        modalities=("rgb", "flow", "warped_flow"), flow_algorithm="tvl1_tensor",
        flow_preset="fast", num_snippets=2, snippet_length=2, width=32, height=24,
    )  # fmt: skip
    jobs = _convert_jobs(tmp_path / "videos")
    jobs = jobs[:3] + jobs[-1:] + jobs[3:-1]  # the empty video in the middle
    engines = convert.Engines(config)
    items = [convert.convert_video(job, config, engines, solve_flow=False) for job in jobs]
    assert [type(x).__name__ for x in items] == ["PendingFlow"] * 3 + ["VideoResult"] + [
        "PendingFlow"
    ] * 3
    items = [pickle.loads(pickle.dumps(x)) for x in items]  # as a worker sends them
    sizes = [len(x.plan.pending) for x in items if isinstance(x, convert.PendingFlow)]
    calls = []  # the batch size of each call of the compiled program
    compiled = tvl1.compiled_solver

    def counted(*args, **kwargs):
        fn = compiled(*args, **kwargs)
        return lambda a, b: calls.append(len(a)) or fn(a, b)

    monkeypatch.setattr(tvl1, "compiled_solver", counted)

    together = list(flow_batches(copy.deepcopy(items), config, batch=3))
    assert calls == [3] * math.ceil(sum(sizes) / 3)  # full calls, shared between videos
    assert len(calls) < sum(math.ceil(n / 3) for n in sizes)
    alone = [  # and one encoding thread instead of the pool
        r for x in copy.deepcopy(items) for r in flow_batches([x], config, batch=3, encoders=1)
    ]
    assert [r.job for r in together] == jobs
    assert together[3].examples is None and together[3].reason
    for a, b in zip(together, alone, strict=True):
        assert a.examples == b.examples and a.flow_pairs == b.flow_pairs
    # plain and warped flow of every field; a warped field that fell back to the plain one
    # was not queued (solved once) but is stored and counted
    first = together[0]
    assert set(first.examples) == {"rgb", "flow", "warped_flow"}
    assert first.flow_pairs == sizes[0] + first.warped_fallbacks
    assert first.flow_pairs % 2 == 0


def test_flow_batches_hand_over_every_video_whatever_the_encoders_timing(tmp_path, monkeypatch):
    """An encoder empties its video's pending pairs (`plan.finish`); a video handed over stays
    handed over, so the videos after it still reach the encoders. Encoders that finish at once
    but report unfinished until asked (the timing that once left a later video unencoded, and
    `flow_batches` raising AttributeError at the end) give the examples of the usual pool."""
    import concurrent.futures

    from tsn_keras.convert import flow_batches as fb

    config = convert.ConvertConfig(
        modalities=("rgb", "flow"), flow_algorithm="tvl1_tensor", flow_preset="fast",
        num_snippets=2, snippet_length=2, width=32, height=24,
    )  # fmt: skip
    jobs = _convert_jobs(tmp_path / "videos")[:3]
    engines = convert.Engines(config)
    items = [convert.convert_video(job, config, engines, solve_flow=False) for job in jobs]
    usual = list(fb.flow_batches(items, config, batch=2))
    items = [convert.convert_video(job, config, engines, solve_flow=False) for job in jobs]

    class LateFuture(concurrent.futures.Future):
        def __init__(self, value):
            super().__init__()
            self.value = value

        def done(self):
            return False

        def result(self, timeout=None):
            return self.value

    class EagerPool:  # runs each job on submit, reports it unfinished until its result is read
        def __init__(self, workers):
            pass

        def submit(self, fn):
            return LateFuture(fn())

        def shutdown(self, **kwargs):
            pass

    monkeypatch.setattr(concurrent.futures, "ThreadPoolExecutor", EagerPool)
    eager = list(fb.flow_batches(items, config, batch=2))
    assert [r.job for r in eager] == jobs
    for a, b in zip(eager, usual, strict=True):
        assert a.examples == b.examples and a.examples is not None


def test_flow_batches_bound_the_short_side_sizes(tmp_path, monkeypatch):
    """With --short_side, videos of other aspect ratios have other frame sizes: the pairs are
    solved padded to multiples of 32 (videos of nearby sizes share one program and its calls,
    others never mix), each flow cropped back to its video's size; the progress line shows
    each size's first call (it compiles)."""
    import io

    from tsn_keras import video
    from tsn_keras.convert import flow_batches as fb

    assert fb.padded_size(24, 32) == (32, 32) and fb.padded_size(33, 64) == (64, 64)
    x = np.arange(6, dtype=np.uint8).reshape(1, 2, 3)
    assert fb.pad_pairs(x, (3, 4)).tolist() == [[[0, 1, 2, 2], [3, 4, 5, 5], [3, 4, 5, 5]]]
    config = convert.ConvertConfig(
        modalities=("flow",), flow_algorithm="tvl1_tensor", flow_preset="fast",
        num_snippets=2, snippet_length=2, short_side=24, jpeg_quality=100,
    )  # fmt: skip
    wide = _write_pan(tmp_path / "wide.avi", 5, 1, 0)  # 48x64 -> 24x32
    square = str(tmp_path / "square.avi")  # 48x48 -> 24x24
    video.write_video(square, [np.full((48, 48, 3), 40 * t, np.uint8) for t in range(5)])
    pano = str(tmp_path / "pano.avi")  # 48x112 -> 24x56
    base = np.stack([_texture(48, 112, 4)] * 3, -1).astype(np.uint8)
    video.write_video(pano, [np.roll(base, 2 * t, axis=1) for t in range(5)])
    jobs = [convert.VideoJob(p, os.path.basename(p), 0, "A") for p in (wide, square, pano, wide)]
    engines = convert.Engines(config)
    items = [convert.convert_video(job, config, engines, solve_flow=False) for job in jobs]
    sizes = [x.plan.pending_pairs()[0].shape[1:] for x in items]
    assert sizes == [(24, 32), (24, 24), (24, 56), (24, 32)]
    calls = []  # the pairs' size in each call of the compiled program
    compiled = tvl1.compiled_solver

    def spied(*args, **kwargs):
        fn = compiled(*args, **kwargs)
        return lambda a, b: calls.append(a.shape[1:]) or fn(a, b)

    monkeypatch.setattr(tvl1, "compiled_solver", spied)
    line = io.StringIO()
    progress = convert.Progress(len(jobs), True, line)
    results = list(fb.flow_batches(items, config, batch=8))
    progress.close()
    n = [len(x.plan.pending) for x in items]
    assert n[0] + n[1] <= 8 and n[2] + n[3] <= 8
    assert calls == [(32, 32), (32, 64), (32, 32)]  # wide + square share a call
    assert [r.job for r in results] == jobs
    assert results[0].examples == results[3].examples  # the same video, the same bytes
    assert all(r.flow_pairs > 0 for r in results)
    shown = line.getvalue()
    for size in ("32x32", "32x64"):
        assert f"TV-L1 {size}: compiling (first call)..." in shown
        assert f"TV-L1 {size} compiled: first call" in shown
    # the stored fields are the padded solve, cropped to the pano's own size: its pan of
    # 2 px per frame at 112 px wide is dx 1 px at 56 (bound 20: 127.5 + 6.4 levels)
    example = tf.train.SequenceExample.FromString(results[2].examples["flow"])
    field = example.feature_lists.feature_list["flow/x/encoded"].feature[0].bytes_list.value[0]
    plane = tf.io.decode_jpeg(field).numpy()[..., 0]
    assert plane.shape == (24, 56)
    assert 131 < float(np.median(plane)) < 137, np.median(plane)


@pytest.mark.slow
def test_converter_flow_is_the_solvers(tmp_path):
    """The stored fields are tvl1_flow of the video's frame pairs, encoded."""
    path = _write_pan(tmp_path / "v.avi", 6, 2, 0)
    config = convert.ConvertConfig(
        modalities=("flow",), flow_algorithm="tvl1_tensor", flow_preset="fast",
        num_snippets=2, snippet_length=2, width=32, height=24, jpeg_quality=100,
    )  # fmt: skip
    job = convert.VideoJob(path, "v.avi", 0, "A")
    result = convert.convert_video(job, config)
    assert result.flow_pairs == 4
    parsed = records.parse_example(tf.constant(result.examples["flow"]), ["flow"])
    stack = records.decode_snippets(parsed, "flow", [0], 2).numpy()[0]  # [H, W, 4]
    from tsn_keras import video

    _, frames = video.sample_frames(path, lambda n: range(n), config.resize)
    gray = [flow.to_gray(frames[i]) for i in range(6)]
    start = int(parsed["frame_indices"][0])
    want = tvl1.tvl1_flow(
        np.stack(gray[start : start + 1]), np.stack(gray[start + 1 : start + 2]), "fast"
    )
    x, _ = flow.encode_flow(want[0])
    assert np.abs(stack[..., 0].astype(int) - x).max() <= 2  # JPEG at quality 100
    assert json.dumps(dataclasses.asdict(config))  # the config stays JSON (the manifest's)


def test_predict_converts_with_the_models_algorithm_and_preset():
    """predict rebuilds the training records' conversion: tvl1_tensor and its preset included;
    an export made before flow_preset existed gets the default, and --flow_preset overrides."""
    from tsn_keras import scoring

    trained = dataclasses.asdict(
        convert.ConvertConfig(flow_algorithm="tvl1_tensor", flow_preset="fast", width=64, height=48)
    )
    old = dict(trained, flow_algorithm="tvl1")
    old.pop("flow_preset")

    def scorer(conversion, modality="flow"):
        info = scoring.ModelInfo(
            modality, "tiny", 32, 5, ("a", "b"), json.loads(json.dumps(conversion))
        )
        return scoring.Scorer(info, lambda x: x, "model")

    ((config, members),) = scoring.group_models([scorer(trained)], 25)
    assert (config.flow_algorithm, config.flow_preset, config.width) == ("tvl1_tensor", "fast", 64)
    ((config, _),) = scoring.group_models([scorer(old)], 25)
    assert (config.flow_algorithm, config.flow_preset) == ("tvl1", "parity")
    ((config, _),) = scoring.group_models([scorer(trained)], 25, flow_preset="parity")
    assert config.flow_preset == "parity"
    assert members == [0]


def test_flow_bench_makes_its_pairs_and_measures_opencvs_spread(tmp_path):
    """bench/flow.py's inputs: the synthetic demo pairs at the converter's size, and OpenCV's
    spread (0 for a pair whose flow does not move when one pixel changes: a flat frame)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_flow", f"{REPO}/bench/flow.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    pairs = bench.synthetic_pairs(str(tmp_path), 2)
    assert pairs.shape == (2, 2, 256, 340) and pairs.dtype == np.uint8
    flat = np.zeros((1, 2, 24, 32), np.uint8)
    spread = bench.opencv_spread(flat, np.zeros((1, 24, 32, 2), np.float32))
    assert spread.shape == (1,) and 0 <= spread[0] < 0.5
