"""Augmentation of snippet clips: TSN multi-scale corner cropping, flow-aware flips, test crops.

A clip is a tensor [K, H, W, C]: K snippets of one video, channels last. RGB has C = 3 (RGB
order); flow and warped flow have C = 2L, interleaved x1, y1, x2, y2, ... (raw encoded 0-255,
128 = no motion); rgbdiff has C = 3(L+1) stacked RGB frames.

TSN crops and flips a *group*: one crop window, one scale and one flip decision are drawn per
clip and applied to all K snippets alike (tsn-pytorch `GroupMultiScaleCrop`,
`GroupRandomHorizontalFlip`). The same is done here, so a flow stack and the frames it came from
stay aligned, and the per-clip randomness is three draws rather than 3K.

Every random function takes a stateless seed (int tensor [2]); the same seed gives the same
clip eagerly and inside `tf.data.Dataset.map`.

The view functions (`train_augment`, `center_crop`, `crop_views`) return uint8 views on the
0-255 scale (`to_uint8`): they are what the input pipeline batches and ships to the
accelerator, where `models.preprocess_input` normalises them.
"""

from collections.abc import Sequence

import tensorflow as tf

from tsn_keras import modalities

RGB_SCALES = (1.0, 0.875, 0.75, 0.66)
FLOW_SCALES = (1.0, 0.875, 0.75)  # TSN drops .66 for flow (main.py: `scales=[1, .875, .75]`)
NUM_TEST_CROPS = (1, 3, 10)


def default_scales(modality: str) -> tuple[float, ...]:
    """TSN's multi-scale crop scales: (1, .875, .75, .66), flow without .66."""
    return FLOW_SCALES if modalities.is_flow(modality) else RGB_SCALES


def default_scale_size(input_size: int) -> int:
    """Short side a frame is resized to before the centre/test crops (256 for 224)."""
    return input_size * 256 // 224


def scale_pairs(num_scales: int, max_distort: int = 1) -> list[tuple[int, int]]:
    """All (height scale index, width scale index) pairs with |i - j| <= max_distort.

    The order is tsn-pytorch's (`for i, h: for j, w:`), so a draw of pair p is comparable.
    """
    return [
        (i, j) for i in range(num_scales) for j in range(num_scales) if abs(i - j) <= max_distort
    ]


def crop_sizes(base_size, scales: Sequence[float], input_size: int) -> tf.Tensor:
    """Crop side per scale: int(base * scale), snapped to input_size when within 3 px.

    Args:
      base_size: min(H, W) of the frame, scalar int tensor.
      scales: the scale set, e.g. (1, .875, .75, .66).
      input_size: the network's input side.

    Returns:
      int32 tensor [len(scales)].
    """
    base = tf.cast(base_size, tf.float32)
    sizes = tf.cast(tf.floor(base * tf.constant(scales, tf.float32)), tf.int32)  # [S]
    return tf.where(tf.abs(sizes - input_size) < 3, input_size, sizes)


def fixed_crop_offsets(image_h, image_w, crop_h, crop_w, more_fix_crop: bool) -> tf.Tensor:
    """TSN's fixed crop positions (`fill_fix_offset`): int32 [P, 2] of (y, x) top-left corners.

    P = 5 (upper-left, upper-right, lower-left, lower-right, centre) or 13 with more_fix_crop
    (adds centre-left, centre-right, lower-centre, upper-centre and the four quarter points).
    Positions are multiples of step = (image - crop) // 4, exactly as tsn-pytorch.
    """
    ws = (tf.cast(image_w, tf.int32) - tf.cast(crop_w, tf.int32)) // 4
    hs = (tf.cast(image_h, tf.int32) - tf.cast(crop_h, tf.int32)) // 4
    # (x multiple, y multiple) of the steps, in tsn-pytorch's order.
    grid = [(0, 0), (4, 0), (0, 4), (4, 4), (2, 2)]
    if more_fix_crop:
        grid += [(0, 2), (4, 2), (2, 4), (2, 0), (1, 1), (3, 1), (1, 3), (3, 3)]
    mult = tf.constant(grid, tf.int32)  # [P, 2] (x, y)
    return tf.stack([mult[:, 1] * hs, mult[:, 0] * ws], axis=1)  # [P, 2] (y, x)


def _resize(clip: tf.Tensor, size) -> tf.Tensor:
    """Bilinear resize of [K, h, w, C] to `size` (h, w); float32.

    uint8 input goes to the kernel as is: it computes in float32 anyway, and skipping a cast
    pass over the window makes the training pipeline ~25% faster on a memory-bound CPU.
    """
    return tf.image.resize(clip, size, method="bilinear")


def to_uint8(views: tf.Tensor, in_range: bool = False) -> tf.Tensor:
    """Round 0-255 float views to uint8 (half up: floor(x + 0.5)), the dtype views travel in.

    Views travel as uint8 (4x fewer bytes to batch, prefetch and copy to the accelerator than
    float32); `models.preprocess_input` turns them into network input on the device. Rounding
    moves a value by at most half a grey level, far below JPEG's own error.

    Args:
      views: float views on the 0-255 scale (values outside are saturated).
      in_range: the caller knows every value is in [0, 255] (a bilinear resize of uint8
        pixels: its weights are convex), so the clipping pass is skipped; same result.
    """
    if views.dtype == tf.uint8:
        return views
    if in_range:
        return tf.cast(views + 0.5, tf.uint8)
    return tf.saturate_cast(views + 0.5, tf.uint8)


def multi_scale_box(
    image_h,
    image_w,
    input_size: int,
    seed: tf.Tensor,
    scales: Sequence[float] = RGB_SCALES,
    max_distort: int = 1,
    more_fix_crop: bool = True,
) -> tf.Tensor:
    """The window of `multi_scale_crop` in an image_h x image_w frame: int32 [4] (y, x, h, w).

    Drawn from the frame size alone, so the training pipeline can crop each JPEG as it is
    decoded, before the snippets are stacked (`records.decode_snippets(window=...)`).
    """
    image_h = tf.cast(image_h, tf.int32)
    image_w = tf.cast(image_w, tf.int32)
    sizes = crop_sizes(tf.minimum(image_h, image_w), scales, input_size)  # [S]
    pairs = tf.constant(scale_pairs(len(scales), max_distort), tf.int32)  # [Q, 2] (i_h, j_w)
    pair_seed, pos_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    p = tf.random.stateless_uniform(
        [], pair_seed, minval=0, maxval=tf.shape(pairs)[0], dtype=tf.int32
    )
    crop_h = tf.minimum(sizes[pairs[p, 0]], image_h)
    crop_w = tf.minimum(sizes[pairs[p, 1]], image_w)
    offsets = fixed_crop_offsets(image_h, image_w, crop_h, crop_w, more_fix_crop)  # [P, 2]
    o = tf.random.stateless_uniform(
        [], pos_seed, minval=0, maxval=tf.shape(offsets)[0], dtype=tf.int32
    )
    return tf.stack([offsets[o, 0], offsets[o, 1], crop_h, crop_w])


def crop_box(clip: tf.Tensor, box: tf.Tensor) -> tf.Tensor:
    """clip[:, y : y + h, x : x + w] for box = (y, x, h, w)."""
    return clip[:, box[0] : box[0] + box[2], box[1] : box[1] + box[3]]


def multi_scale_crop(
    clip: tf.Tensor,
    input_size: int,
    seed: tf.Tensor,
    scales: Sequence[float] = RGB_SCALES,
    max_distort: int = 1,
    more_fix_crop: bool = True,
) -> tf.Tensor:
    """TSN multi-scale corner crop of a whole clip, resized to input_size x input_size.

    Crop height and width are drawn (as a pair with scale indices |i - j| <= max_distort) from
    int(min(H, W) * scale); the window's corner is drawn from the 5 or 13 fixed positions. The
    same window is used for all K snippets.

    Args:
      clip: [K, H, W, C] uint8 or float.
      input_size: output side.
      seed: int tensor [2], stateless seed.
      scales: scale set; `default_scales(modality)` gives TSN's.
      max_distort: largest allowed difference between the height and width scale indices.
      more_fix_crop: 13 positions (TSN default) instead of 5.

    Returns:
      float32 [K, input_size, input_size, C] (unrounded: the geometry primitive; the view
      functions below return uint8).
    """
    shape = tf.shape(clip)
    box = multi_scale_box(shape[1], shape[2], input_size, seed, scales, max_distort, more_fix_crop)
    return _resize(crop_box(clip, box), [input_size, input_size])


def horizontal_flip(clip: tf.Tensor, modality: str) -> tf.Tensor:
    """Mirror a clip left-right; for flow also invert the x components (255 - x).

    Mirroring an image turns rightward motion into leftward motion, so the x flow, encoded
    0..255 around 128, must change sign: x -> 255 - x (tsn-pytorch `ImageOps.invert` on the
    even, x, frames of a flow group). Channels are interleaved x1, y1, x2, y2, ...

    Args:
      clip: [K, H, W, C] uint8 or float (0-255 scale).
      modality: "rgb", "rgbdiff", "flow" or "warped_flow".

    Returns:
      the mirrored clip, same dtype and shape.
    """
    modalities.check(modality)
    flipped = tf.reverse(clip, axis=[2])
    if not modalities.is_flow(modality):
        return flipped
    channels = flipped.shape[-1]
    if channels is None:
        raise ValueError("horizontal_flip of flow needs a static channel count (2L).")
    is_x = [c % 2 == 0 for c in range(channels)]  # x1, y1, x2, y2, ...: even channels are x
    if flipped.dtype == tf.uint8:  # 255 - x is the bitwise complement: one xor pass
        return tf.bitwise.bitwise_xor(flipped, tf.constant([255 * i for i in is_x], tf.uint8))
    sign = tf.constant([-1.0 if i else 1.0 for i in is_x], flipped.dtype)  # [C]
    offset = tf.constant([255.0 if i else 0.0 for i in is_x], flipped.dtype)  # [C]
    return flipped * sign + offset


def random_flip(clip: tf.Tensor, modality: str, seed: tf.Tensor) -> tf.Tensor:
    """horizontal_flip with probability 0.5, one decision for the whole clip."""
    flip = tf.random.stateless_uniform([], seed) < 0.5
    return tf.cond(flip, lambda: horizontal_flip(clip, modality), lambda: clip)


def _train_seeds(seed: tf.Tensor) -> list[tf.Tensor]:
    return tf.unstack(tf.random.experimental.stateless_split(seed, 2))  # crop seed, flip seed


def train_crop_box(
    image_h, image_w, modality: str, input_size: int, seed: tf.Tensor, more_fix_crop: bool = True
) -> tf.Tensor:
    """The window `train_augment` crops for this seed: int32 [4] (y, x, h, w).

    With `train_augment_window` it splits `train_augment` around decoding: draw the window
    from the stored frame size, decode and crop each JPEG, then flip and resize. The result is
    exactly `train_augment` of the whole decoded clip with the same seed.
    """
    crop_seed, _ = _train_seeds(seed)
    return multi_scale_box(
        image_h,
        image_w,
        input_size,
        crop_seed,
        default_scales(modality),
        more_fix_crop=more_fix_crop,
    )


def train_augment_window(
    window: tf.Tensor, modality: str, input_size: int, seed: tf.Tensor, flip: bool = True
) -> tf.Tensor:
    """The rest of `train_augment` after cropping: random flip, resize, round to uint8."""
    _, flip_seed = _train_seeds(seed)
    # Flipping the window before resizing is the same as after (bilinear resizing with
    # half-pixel centres is mirror-symmetric) and touches 4x fewer bytes while still uint8.
    if flip:
        window = random_flip(window, modality, flip_seed)
    resized = _resize(window, [input_size, input_size])
    return to_uint8(resized, in_range=window.dtype == tf.uint8)


def train_augment(
    clip: tf.Tensor,
    modality: str,
    input_size: int,
    seed: tf.Tensor,
    more_fix_crop: bool = True,
    flip: bool = True,
) -> tf.Tensor:
    """TSN training augmentation: multi-scale corner crop, then a flow-aware random flip.

    Args:
      clip: [K, H, W, C] uint8 or float (0-255).
      modality: "rgb", "rgbdiff", "flow" or "warped_flow" (sets the scales and the flip).
      input_size: output side.
      seed: int tensor [2].
      more_fix_crop: 13 crop positions (TSN default) instead of 5.
      flip: the random horizontal flip; turn it off when the classes depend on left vs right
        (a flipped "swipe left" is a "swipe right").

    Returns:
      uint8 [K, input_size, input_size, C] (see `to_uint8`).
    """
    shape = tf.shape(clip)
    box = train_crop_box(shape[1], shape[2], modality, input_size, seed, more_fix_crop)
    return train_augment_window(crop_box(clip, box), modality, input_size, seed, flip)


def resize_short_side(clip: tf.Tensor, size: int) -> tf.Tensor:
    """Resize [N, H, W, C] so the short side is `size` (torchvision Resize(int)); float32."""
    shape = tf.shape(clip)
    h = tf.cast(shape[1], tf.float32)
    w = tf.cast(shape[2], tf.float32)
    short = tf.minimum(h, w)
    new_h = tf.where(h <= w, size, tf.cast(tf.floor(size * h / short), tf.int32))
    new_w = tf.where(h <= w, tf.cast(tf.floor(size * w / short), tf.int32), size)
    return _resize(clip, tf.stack([new_h, new_w]))


def _crop(clip: tf.Tensor, y, x, size: int) -> tf.Tensor:
    """Square window [N, size, size, C] with top-left corner (y, x)."""
    out = clip[:, y : y + size, x : x + size]
    out.set_shape([clip.shape[0], size, size, clip.shape[-1]])
    return out


def center_crop(clip: tf.Tensor, input_size: int, scale_size: int | None = None) -> tf.Tensor:
    """Validation/serving view: resize the short side to scale_size, crop the centre.

    TSN's `GroupScale(scale_size)` + `GroupCenterCrop(input_size)`, scale_size = input_size *
    256 // 224 by default. Works on any [N, H, W, C] (N = K snippets, or B*K).

    Returns:
      uint8 [N, input_size, input_size, C] (see `to_uint8`).
    """
    scale_size = default_scale_size(input_size) if scale_size is None else scale_size
    if scale_size < input_size:
        raise ValueError(
            f"scale_size must be >= input_size. Received: scale_size={scale_size}, "
            f"input_size={input_size}"
        )
    clip = to_uint8(resize_short_side(clip, scale_size), in_range=clip.dtype == tf.uint8)
    shape = tf.shape(clip)
    y = tf.cast(tf.round(tf.cast(shape[1] - input_size, tf.float32) / 2.0), tf.int32)
    x = tf.cast(tf.round(tf.cast(shape[2] - input_size, tf.float32) / 2.0), tf.int32)
    return _crop(clip, y, x, input_size)


def crop_views(
    clip: tf.Tensor,
    modality: str,
    input_size: int,
    num_crops: int = 10,
    scale_size: int | None = None,
) -> tf.Tensor:
    """Test-time views of one clip: [num_crops, K, input_size, input_size, C] uint8.

    All crops are taken after resizing the short side to scale_size (input_size * 256 // 224).
      1:  the centre crop (as validation).
      3:  three crops along the long side, start / centre / end (tsn-pytorch step rule,
          positions 0, 2*step, 4*step), centred on the short side.
      10: TSN's oversampling: 4 corners + centre (`fill_fix_offset` order), then the
          horizontal mirrors of those 5 (flow mirrors invert x). Scores are averaged over crops.
    """
    modalities.check(modality)
    if num_crops not in NUM_TEST_CROPS:
        raise ValueError(f"num_crops must be one of {NUM_TEST_CROPS}. Received: {num_crops}")
    if num_crops == 1:
        return center_crop(clip, input_size, scale_size)[None]
    scale_size = default_scale_size(input_size) if scale_size is None else scale_size
    clip = to_uint8(resize_short_side(clip, scale_size), in_range=clip.dtype == tf.uint8)
    shape = tf.shape(clip)
    h, w = shape[1], shape[2]
    if num_crops == 3:
        hs = (h - input_size) // 4
        ws = (w - input_size) // 4
        landscape = w >= h
        ys = tf.where(landscape, tf.fill([3], 2 * hs), tf.stack([0, 2 * hs, 4 * hs]))
        xs = tf.where(landscape, tf.stack([0, 2 * ws, 4 * ws]), tf.fill([3], 2 * ws))
        return tf.stack([_crop(clip, ys[i], xs[i], input_size) for i in range(3)])
    offsets = fixed_crop_offsets(h, w, input_size, input_size, more_fix_crop=False)  # [5, 2]
    crops = [_crop(clip, offsets[i, 0], offsets[i, 1], input_size) for i in range(5)]
    crops += [horizontal_flip(c, modality) for c in crops]
    return tf.stack(crops)  # [10, K, S, S, C]
