"""Augmentation: exact crop windows, one window per clip, flow-aware flips, test-time views."""

import cv2
import numpy as np
import pytest
import tensorflow as tf

from tsn_keras import augment


def _position_clip(k: int, h: int, w: int) -> tf.Tensor:
    """float32 [K, H, W, 3]: channel 0 = row, 1 = column, 2 = snippet index."""
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    frames = [np.stack([yy, xx, np.full_like(yy, i)], axis=-1) for i in range(k)]
    return tf.constant(np.stack(frames), tf.float32)  # [K, H, W, 3]


def _in_dataset(fn, *args):
    """fn(*args) evaluated inside tf.data.Dataset.map."""
    ds = tf.data.Dataset.from_tensors(args).map(lambda *a: fn(*a))
    return next(iter(ds)).numpy()


def test_crop_sizes_follow_the_short_side_and_snap_to_the_input():
    np.testing.assert_array_equal(
        augment.crop_sizes(256, augment.RGB_SCALES, 224), [256, 224, 192, 168]
    )
    # int(240 * s) = 240, 210, 180, 158; 226 (within 3 px of 224) would snap.
    np.testing.assert_array_equal(
        augment.crop_sizes(240, augment.RGB_SCALES, 224), [240, 210, 180, 158]
    )
    np.testing.assert_array_equal(augment.crop_sizes(258, (0.875,), 224), [224])
    assert len(augment.scale_pairs(4)) == 10 and len(augment.scale_pairs(3)) == 7
    assert all(abs(i - j) <= 1 for i, j in augment.scale_pairs(4))
    assert augment.default_scales("flow") == (1.0, 0.875, 0.75)


def test_fixed_crop_offsets_golden():
    # 340x256 frame, 224 crop: x step (340-224)//4 = 29, y step (256-224)//4 = 8.
    five = augment.fixed_crop_offsets(256, 340, 224, 224, more_fix_crop=False).numpy()
    np.testing.assert_array_equal(five, [[0, 0], [0, 116], [32, 0], [32, 116], [16, 58]])
    thirteen = augment.fixed_crop_offsets(256, 340, 224, 224, more_fix_crop=True).numpy()
    assert thirteen.shape == (13, 2)
    np.testing.assert_array_equal(
        thirteen[5:],
        [[16, 0], [16, 116], [32, 58], [0, 58], [8, 29], [8, 87], [24, 29], [24, 87]],
    )


@pytest.mark.parametrize("more_fix_crop,positions", [(False, 5), (True, 13)])
def test_multi_scale_crop_windows_are_exact_and_shared_by_snippets(more_fix_crop, positions):
    # 64x80 frames, scale .75 only, input 48: the crop is 48x48 and needs no resize, so the
    # output must equal a slice of the input at one of the fixed positions (steps 4 and 8).
    clip = _position_clip(3, 64, 80)
    allowed = augment.fixed_crop_offsets(64, 80, 48, 48, more_fix_crop).numpy()
    allowed = {tuple(o) for o in allowed}
    seen = set()
    seeds = tf.data.Dataset.range(150).map(lambda s: tf.stack([s, 1]))
    crops = seeds.map(
        lambda s: augment.multi_scale_crop(clip, 48, s, scales=(0.75,), more_fix_crop=more_fix_crop)
    )
    for out in crops.batch(150).get_single_element().numpy():
        assert out.shape == (3, 48, 48, 3) and out.dtype == np.float32
        y0, x0 = int(out[0, 0, 0, 0]), int(out[0, 0, 0, 1])
        assert (y0, x0) in allowed
        np.testing.assert_array_equal(out, clip.numpy()[:, y0 : y0 + 48, x0 : x0 + 48])
        seen.add((y0, x0))
    assert len(seen) == len(allowed) == positions


def test_multi_scale_crop_sizes_and_same_window_for_all_snippets():
    clip = _position_clip(4, 64, 80)  # base 64 -> sizes 64, 56, 48, 42
    for s in range(20):
        out = augment.multi_scale_crop(clip, 32, tf.constant([s, 2])).numpy()
        assert out.shape == (4, 32, 32, 3)
        # Every snippet shows the same window: only the snippet-index channel differs.
        np.testing.assert_allclose(
            out[1:, ..., :2], np.broadcast_to(out[:1, ..., :2], out[1:, ..., :2].shape)
        )
        np.testing.assert_allclose(out[..., 2], np.arange(4)[:, None, None] * np.ones((4, 32, 32)))
        # The covered window (resized corners) has a side from the scale set.
        side_h = out[0, -1, 0, 0] - out[0, 0, 0, 0]
        side_w = out[0, 0, -1, 1] - out[0, 0, 0, 1]
        assert 42 * 31 / 32 - 2 <= side_h <= 64 and 42 * 31 / 32 - 2 <= side_w <= 64


def test_train_augment_is_deterministic_eager_and_in_tf_data():
    clip = tf.constant(np.random.default_rng(0).integers(0, 256, (3, 40, 56, 10)), tf.uint8)
    seed = tf.constant([5, 6], tf.int64)
    eager = augment.train_augment(clip, "flow", 32, seed).numpy()
    graph = _in_dataset(lambda c, s: augment.train_augment(c, "flow", 32, s), clip, seed)
    np.testing.assert_array_equal(eager, graph)
    assert eager.shape == (3, 32, 32, 10) and eager.dtype == np.uint8


def test_views_are_rounded_uint8_of_the_float_resize():
    """uint8 straight into the resize kernel = resizing the float32 cast; then round-half-even."""
    rng = np.random.default_rng(7)
    clip = tf.constant(rng.integers(0, 256, (2, 37, 53, 3)), tf.uint8)
    direct = tf.image.resize(clip, [32, 32])
    via_float = tf.image.resize(tf.cast(clip, tf.float32), [32, 32])
    np.testing.assert_array_equal(direct, via_float)
    half_up = np.floor(via_float.numpy() + 0.5)
    np.testing.assert_array_equal(augment.to_uint8(via_float), half_up)
    np.testing.assert_array_equal(augment.to_uint8(direct, in_range=True), half_up)
    assert augment.to_uint8(tf.constant([-3.0, 0.5, 1.5, 254.6, 300.0])).numpy().tolist() == [
        0, 1, 2, 255, 255,
    ]  # fmt: skip
    for views in (
        augment.center_crop(clip, 32),
        augment.crop_views(clip, "rgb", 32, 10),
        augment.train_augment(clip, "rgb", 32, tf.constant([1, 2])),
    ):
        assert views.dtype == tf.uint8


def _moving_pattern(shift: int) -> tuple[np.ndarray, np.ndarray]:
    """Two 64x64 textured frames; the second is the first moved right by `shift` px."""
    rng = np.random.default_rng(1)
    tex = cv2.GaussianBlur(rng.integers(0, 256, (64, 96)).astype(np.uint8), (5, 5), 1.5)
    return tex[:, 16:80].copy(), tex[:, 16 - shift : 80 - shift].copy()


def _encoded_flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Farneback flow a -> b, encoded 0..255 as x, y channels (bound 20 px)."""
    flow = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    return np.clip(np.round(flow * 127.5 / 20 + 127.5), 0, 255).astype(np.uint8)  # [H, W, 2]


def test_flipped_right_moving_flow_reads_as_left_moving():
    a, b = _moving_pattern(3)
    flow = _encoded_flow(a, b)  # rightward: x > 128
    core = (slice(16, 48), slice(16, 48))
    assert flow[core][..., 0].mean() > 140 and abs(flow[core][..., 1].mean() - 127.5) < 5
    # A 2-field stack x1, y1, x2, y2 (the same field twice), one snippet.
    clip = tf.constant(np.concatenate([flow, flow], axis=-1)[None])  # [1, H, W, 4]
    flipped = augment.horizontal_flip(clip, "flow").numpy()[0]
    assert flipped.dtype == np.uint8
    assert flipped[core][..., 0].mean() < 115 and flipped[core][..., 2].mean() < 115
    np.testing.assert_array_equal(flipped[..., 1], flow[:, ::-1, 1])  # y only mirrored
    np.testing.assert_array_equal(flipped[..., 0], 255 - flow[:, ::-1, 0])
    # It is the flow of the mirrored video: compare with flow computed on flipped frames.
    truth = _encoded_flow(a[:, ::-1].copy(), b[:, ::-1].copy())
    diff = np.abs(flipped[core][..., :2].astype(int) - truth[core].astype(int))
    assert diff.mean() < 4
    # Eager and tf.data agree; rgb is only mirrored.
    graph = _in_dataset(lambda c: augment.horizontal_flip(c, "flow"), clip)
    np.testing.assert_array_equal(graph[0], flipped)
    rgb = tf.constant(np.random.default_rng(2).integers(0, 256, (2, 8, 8, 3)), tf.uint8)
    np.testing.assert_array_equal(augment.horizontal_flip(rgb, "rgb"), rgb.numpy()[:, :, ::-1])


def test_random_flip_flips_about_half_the_clips():
    clip = _position_clip(1, 4, 6)
    flips = [
        augment.random_flip(clip, "rgb", tf.constant([s, 0])).numpy()[0, 0, 0, 1] == 5
        for s in range(100)
    ]
    assert 25 < sum(flips) < 75


def test_train_augment_without_flip_keeps_direction():
    """--random_flip=false: a right-moving flow pattern stays right-moving under every seed."""
    x = np.full((1, 16, 16, 2), 128, np.uint8)
    x[..., 0] = 200  # x flow > 128: moving right
    clip = tf.constant(x)
    with_flip, without = [], []
    for s in range(40):
        seed = tf.constant([s, 1])
        with_flip.append(augment.train_augment(clip, "flow", 8, seed).numpy()[..., 0].mean())
        without.append(
            augment.train_augment(clip, "flow", 8, seed, flip=False).numpy()[..., 0].mean()
        )
    assert min(without) > 190
    assert any(v < 60 for v in with_flip) and any(v > 190 for v in with_flip)


def test_center_crop_golden():
    clip = _position_clip(2, 256, 340)  # short side already 256 -> no resize
    out = augment.center_crop(clip, 224).numpy()
    assert out.shape == (2, 224, 224, 3)
    assert (out[0, 0, 0, 0], out[0, 0, 0, 1]) == (16, 58)  # round((256-224)/2), round(116/2)
    graph = _in_dataset(lambda c: augment.center_crop(c, 224), clip)
    np.testing.assert_array_equal(graph, out)
    # A 128x170 frame is scaled up to short side 256 first, giving the same 224 view size.
    assert augment.center_crop(_position_clip(1, 128, 170), 224).shape == (1, 224, 224, 3)


@pytest.mark.parametrize("num_crops", [1, 3, 10])
def test_crop_views(num_crops):
    clip = tf.constant(np.random.default_rng(3).integers(0, 256, (2, 36, 48, 4)), tf.uint8)
    views = augment.crop_views(clip, "flow", 32, num_crops, scale_size=36).numpy()
    assert views.shape == (num_crops, 2, 32, 32, 4)
    c = clip.numpy().astype(np.float32)
    if num_crops == 10:
        # 4 corners + centre of the 36x48 frame (steps 1 and 4), then their flow mirrors.
        np.testing.assert_array_equal(views[0], c[:, 0:32, 0:32])
        np.testing.assert_array_equal(views[3], c[:, 4:36, 16:48])
        np.testing.assert_array_equal(views[4], c[:, 2:34, 8:40])
        np.testing.assert_array_equal(views[5], augment.horizontal_flip(views[0], "flow"))
    if num_crops == 3:
        np.testing.assert_array_equal(views[2], c[:, 2:34, 16:48])
    if num_crops == 1:
        np.testing.assert_array_equal(views[0], c[:, 2:34, 8:40])


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="modality"):
        augment.horizontal_flip(tf.zeros([1, 4, 4, 3]), "depth")
    with pytest.raises(ValueError, match="num_crops"):
        augment.crop_views(tf.zeros([1, 40, 40, 3]), "rgb", 32, 5)
