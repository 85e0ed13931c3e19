"""BN-Inception (Ioffe & Szegedy, 2015) exactly as TSN uses it, in Keras 3 layers.

The network is numerically the Caffe BN-Inception of the TSN release, which is also
tsn-pytorch's `tf_model_zoo` model and pretrainedmodels' `bninception`:

- 69 convolutions, each with a bias, each followed by BatchNormalization (epsilon 1e-5,
  momentum 0.9 = PyTorch's 0.1) and ReLU;
- Caffe padding is symmetric: convolutions with stride 2 (and conv1) get explicit zero padding
  followed by a 'valid' convolution, because Keras' 'same' pads right/bottom first on even sizes;
- max pools are ceil-mode (`CeilMaxPooling2D`: -inf padding on the right/bottom, so a partial
  last window is kept as Caffe does);
- the inception branches' 3x3/1 average pools count the padded zeros (explicit zero padding,
  then a 'valid' average pool); inception 5b's pool branch is a 3x3/1 max pool;
- global average pooling replaces Caffe's fixed 7x7 pool, so other input sizes work.

Layer names are the PyTorch state-dict prefixes (`conv1_7x7_s2`, `conv1_7x7_s2_bn`,
`inception_3a_1x1`, ..., `inception_5b_pool_proj_bn`, classifier `last_linear`), which is what
`tsn_keras.models.weights` maps from.

Valid input sizes. Like the Caffe/PyTorch network, the stride-2 blocks 3c and 4e concatenate a
floor-mode convolution with a ceil-mode pool, which agree only on even maps: the map after
pool2 must be a multiple of 4. 224 (-> 28), 256 (-> 32), 288, 320, ... work; 240 (-> 30) does
not, in PyTorch either. `BNInception` checks this for a static input shape.

Pretrained weights expect BGR, 0-255, minus the mean [104, 117, 128] (B, G, R), no std; flow
expects 0-255 minus 128. `preprocess_bn_inception` does exactly this from RGB uint8 input.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable

import keras
from keras import layers, ops

from tsn_keras import modalities
from tsn_keras.models import transfer

# Mean of the pretrained BN-Inception, in the network's (BGR) channel order.
BGR_MEAN = (104.0, 117.0, 128.0)
FLOW_MEAN = 128.0
BN_EPSILON = 1e-5
# Feature width of the 5b output (input of the classifier).
FEATURE_DIM = 1024

# Inception blocks: (name, 1x1, 3x3_reduce, 3x3, double_3x3_reduce, double_3x3, pool, pool_proj,
# stride). 1x1 = 0 and pool_proj = 0 mean the branch is absent (the stride-2 blocks 3c and 4e,
# whose pool branch is the max pool itself).
_BLOCKS = (
    ("3a", 64, 64, 64, 64, 96, "avg", 32, 1),  # -> 256
    ("3b", 64, 64, 96, 64, 96, "avg", 64, 1),  # -> 320
    ("3c", 0, 128, 160, 64, 96, "max", 0, 2),  # -> 576
    ("4a", 224, 64, 96, 96, 128, "avg", 128, 1),  # -> 576
    ("4b", 192, 96, 128, 96, 128, "avg", 128, 1),  # -> 576
    ("4c", 160, 128, 160, 128, 160, "avg", 128, 1),  # -> 608
    ("4d", 96, 128, 192, 160, 192, "avg", 128, 1),  # -> 608
    ("4e", 0, 128, 192, 192, 256, "max", 0, 2),  # -> 1056
    ("5a", 352, 192, 320, 160, 224, "avg", 128, 1),  # -> 1024
    ("5b", 352, 192, 320, 192, 224, "max", 128, 1),  # -> 1024 (pool branch: 3x3/1 max pool)
)
BLOCK_NAMES = tuple(f"inception_{b[0]}" for b in _BLOCKS)


@keras.saving.register_keras_serializable(package="tsn_keras")
class CeilMaxPooling2D(layers.Layer):
    """Max pooling with Caffe/PyTorch `ceil_mode=True` output sizes and symmetric padding.

    Pads `padding` on the top/left and `padding + strides - 1` on the bottom/right with -inf,
    then pools with 'valid'. The valid pool over the padded map yields
    `ceil((H + 2 * padding - pool_size) / strides) + 1` rows, which is the ceil-mode count, and
    the -inf padding never wins a max, so a partial last window sees only real values.

    Args:
        pool_size: Square window size.
        strides: Square stride.
        padding: Symmetric padding (PyTorch `padding`).
        **kwargs: Base layer arguments (name, dtype, ...).
    """

    def __init__(self, pool_size: int = 3, strides: int = 2, padding: int = 0, **kwargs):
        super().__init__(**kwargs)
        if pool_size < 1 or strides < 1 or padding < 0 or padding * 2 > pool_size:
            raise ValueError(
                "CeilMaxPooling2D needs pool_size >= 1, strides >= 1 and 0 <= padding <= "
                f"pool_size / 2. Received: pool_size={pool_size}, strides={strides}, "
                f"padding={padding}"
            )
        self.pool_size = int(pool_size)
        self.strides = int(strides)
        self.padding = int(padding)

    def call(self, inputs):
        lo, hi = self.padding, self.padding + self.strides - 1
        if lo or hi:
            inputs = ops.pad(
                inputs, [[0, 0], [lo, hi], [lo, hi], [0, 0]], constant_values=float("-inf")
            )
        return ops.max_pool(inputs, self.pool_size, self.strides, padding="valid")

    def compute_output_shape(self, input_shape):
        def size(n):
            if n is None:
                return None
            return math.ceil((n + 2 * self.padding - self.pool_size) / self.strides) + 1

        return (input_shape[0], size(input_shape[1]), size(input_shape[2]), input_shape[3])

    def get_config(self):
        config = super().get_config()
        config.update(pool_size=self.pool_size, strides=self.strides, padding=self.padding)
        return config


def _conv_bn(
    x, filters: int, kernel: int, stride: int, name: str, relu_name: str, *, pad: int | None = None
):
    """Conv (with bias) -> BN (eps 1e-5) -> ReLU, Caffe-padded (pad defaults to kernel // 2)."""
    pad = kernel // 2 if pad is None else pad
    if stride == 1 and pad == kernel // 2:
        # Odd kernel, stride 1: Keras 'same' pads kernel // 2 on both sides, as Caffe does.
        padding = "same"
    else:
        x = layers.ZeroPadding2D(pad, name=f"{name}_pad")(x)
        padding = "valid"
    x = layers.Conv2D(filters, kernel, strides=stride, padding=padding, name=name)(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, momentum=0.9, name=f"{name}_bn")(x)
    return layers.ReLU(name=relu_name)(x)


def _inception_block(x, spec):
    """One inception block; the branch order of the concat is 1x1, 3x3, double 3x3, pool."""
    block, n1x1, n3r, n3, nd3r, nd3, pool, npool, stride = spec
    p = f"inception_{block}_"
    branches = []
    if n1x1:
        branches.append(_conv_bn(x, n1x1, 1, 1, p + "1x1", p + "relu_1x1"))
    b = _conv_bn(x, n3r, 1, 1, p + "3x3_reduce", p + "relu_3x3_reduce")
    branches.append(_conv_bn(b, n3, 3, stride, p + "3x3", p + "relu_3x3"))
    b = _conv_bn(x, nd3r, 1, 1, p + "double_3x3_reduce", p + "relu_double_3x3_reduce")
    b = _conv_bn(b, nd3, 3, 1, p + "double_3x3_1", p + "relu_double_3x3_1")
    branches.append(_conv_bn(b, nd3, 3, stride, p + "double_3x3_2", p + "relu_double_3x3_2"))
    if stride == 2:
        # Stride-2 block: the pool branch is a ceil-mode 3x3/2 max pool without projection.
        branches.append(CeilMaxPooling2D(3, 2, 0, name=p + "pool")(x))
    else:
        if pool == "avg":
            # Caffe AVE pooling with pad 1 divides by 9 everywhere (padded zeros count).
            b = layers.ZeroPadding2D(1, name=p + "pool_pad")(x)
            b = layers.AveragePooling2D(3, strides=1, padding="valid", name=p + "pool")(b)
        else:
            b = CeilMaxPooling2D(3, 1, 1, name=p + "pool")(x)
        branches.append(_conv_bn(b, npool, 1, 1, p + "pool_proj", p + "relu_pool_proj"))
    return layers.Concatenate(axis=-1, name=p + "output")(branches)


def stage3_size(size: int) -> int:
    """Side of the map after pool2 (the input of inception 3a) for an input side `size`."""
    c1 = (size + 2 * 3 - 7) // 2 + 1  # conv1 7x7/2 pad 3
    p1 = math.ceil((c1 - 3) / 2) + 1  # pool1 3x3/2 ceil
    return math.ceil((p1 - 3) / 2) + 1  # pool2 3x3/2 ceil (conv2 keeps the size)


def check_input_size(size: int | None, what: str = "input_shape") -> None:
    """Raises ValueError if BN-Inception cannot run on an input side of `size` pixels.

    Args:
        size: Height or width in pixels; None (dynamic) is not checked.
        what: How the caller names the value, for the message.
    """
    if size is None:
        return
    s3 = stage3_size(size) if size >= 1 else 0
    if size < 32 or s3 % 4:
        good = [n for n in range(max(32, size - 16), size + 33) if stage3_size(n) % 4 == 0]
        raise ValueError(
            f"BN-Inception cannot run on a side of {size} px: the map after pool2 is {s3}, and "
            "the stride-2 blocks 3c/4e need a multiple of 4 (the Caffe/PyTorch network has the "
            f"same limit). Use a size such as 224, 256 or one of {good[:6]}. Received: "
            f"{what} side={size}"
        )


def BNInception(
    include_top: bool = True,
    weights: str | None = None,
    input_shape: tuple[int | None, int | None, int] | None = None,
    input_channels: int = 3,
    classes: int = 1000,
    classifier_activation: str | Callable | None = "softmax",
    pooling: str | None = None,
    name: str = "bn_inception",
) -> keras.Model:
    """Builds BN-Inception, following keras.applications' conventions.

    Args:
        include_top: Add global average pooling and the `last_linear` classifier.
        weights: None (random init) or a path to a Keras `.weights.h5` file written by
            `scripts/convert_weights.py` (or `model.save_weights`). A 3-channel (RGB) file
            loaded into a model with `input_channels` 10 or 15 gets the cross-modality
            initialisation (conv1 averaged over RGB and replicated).
        input_shape: (height, width, channels); default (None, None, input_channels), so any
            valid size runs (see the module docstring for valid sizes).
        input_channels: 3 (RGB), 10 (flow, 5 x/y pairs), 15 (RGB difference, 5 differences).
        classes: Classifier width when include_top.
        classifier_activation: Activation of the classifier ("softmax", None for logits).
        pooling: Without the top: None (the 5b map [N, h, w, 1024]), "avg" or "max"
            ([N, 1024]).
        name: Model name.

    Returns:
        A functional keras.Model taking preprocessed input (see `preprocess_bn_inception`).
    """
    if input_shape is None:
        input_shape = (None, None, input_channels)
    input_shape = tuple(input_shape)
    if len(input_shape) != 3 or input_shape[-1] != input_channels:
        raise ValueError(
            "BNInception input_shape must be (height, width, input_channels) with the channel "
            f"count equal to input_channels. Received: input_shape={input_shape}, "
            f"input_channels={input_channels}"
        )
    if input_channels < 1:
        raise ValueError(f"input_channels must be positive. Received: {input_channels}")
    check_input_size(input_shape[0], "input_shape height")
    check_input_size(input_shape[1], "input_shape width")
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"pooling must be None, 'avg' or 'max'. Received: pooling={pooling!r}")
    if include_top and classes < 1:
        raise ValueError(f"classes must be positive with include_top. Received: {classes}")
    if weights == "imagenet":
        raise ValueError(
            "BN-Inception ImageNet weights exist only as a PyTorch state dict: download "
            "bn_inception-52deb4733.pth (pretrainedmodels) and run `python "
            "scripts/convert_weights.py --input bn_inception-52deb4733.pth --output "
            "bn_inception.weights.h5`, then pass weights='bn_inception.weights.h5'."
        )

    if weights is not None and not os.path.isfile(weights):
        raise FileNotFoundError(
            f"BN-Inception weights file {weights!r} does not exist. Convert a PyTorch state dict "
            "with `python scripts/convert_weights.py --input X.pth --output X.weights.h5`."
        )

    inputs = keras.Input(shape=input_shape, name="image")
    x = _conv_bn(inputs, 64, 7, 2, "conv1_7x7_s2", "conv1_relu_7x7", pad=3)
    x = CeilMaxPooling2D(3, 2, 0, name="pool1_3x3_s2")(x)
    x = _conv_bn(x, 64, 1, 1, "conv2_3x3_reduce", "conv2_relu_3x3_reduce")
    x = _conv_bn(x, 192, 3, 1, "conv2_3x3", "conv2_relu_3x3")
    x = CeilMaxPooling2D(3, 2, 0, name="pool2_3x3_s2")(x)
    for spec in _BLOCKS:
        x = _inception_block(x, spec)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="global_pool")(x)
        x = layers.Dense(classes, activation=classifier_activation, name="last_linear")(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="global_pool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="global_pool")(x)
    model = keras.Model(inputs, x, name=name)

    if weights is not None:
        load_bn_inception_weights(model, weights)
    return model


def load_bn_inception_weights(model: keras.Model, path: str) -> None:
    """Loads a BN-Inception `.weights.h5` file into `model`, with cross-modality init if needed.

    The file must have the model's input channel count, or 3 (RGB) for a model with another
    count, in which case the RGB conv1 kernel is averaged over its input channels and replicated
    (TSN's cross-modality initialisation).
    A file with a classifier loads into a model without one (the classifier is ignored); a
    model with a classifier needs a file with one of the same width.

    Args:
        model: A model built by `BNInception`.
        path: The `.weights.h5` file.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"BN-Inception weights file {path!r} does not exist. Convert a PyTorch state dict "
            "with `python scripts/convert_weights.py --input X.pth --output X.weights.h5`."
        )
    transfer.load_weights(
        model,
        path,
        lambda: BNInception(
            include_top=False,
            weights=path,
            input_shape=model.input_shape[1:3] + (3,),
            input_channels=3,
            pooling=None,
        ),
    )


def rgb_frame_differences(x, per_frame: Callable) -> keras.KerasTensor:
    """RGB difference input: differences of consecutive preprocessed frames.

    Args:
        x: [..., H, W, 3(L+1)] float, L+1 RGB frames stacked along channels (RGB, 0-255).
        per_frame: The backbone's RGB preprocessing of one frame ([..., 3] -> [..., 3]).

    Returns:
        [..., H, W, 3L]: per_frame(f[i+1]) - per_frame(f[i]) for i = 0..L-1 (TSN's order), so a
        constant mean cancels out as in tsn-pytorch's `_get_diff`.
    """
    channels = x.shape[-1]
    if channels is None or channels % 3 or channels < 6:
        raise ValueError(
            "rgbdiff input must stack L+1 >= 2 RGB frames along channels (a multiple of 3, "
            f">= 6). Received: {channels} channels"
        )
    frames = [per_frame(x[..., 3 * i : 3 * i + 3]) for i in range(channels // 3)]
    diffs = [frames[i + 1] - frames[i] for i in range(len(frames) - 1)]
    return ops.concatenate(diffs, axis=-1)


def _bgr_minus_mean(x):
    return ops.flip(x, axis=-1) - ops.convert_to_tensor(BGR_MEAN, dtype=x.dtype)


def preprocess_bn_inception(x, modality: str = "rgb"):
    """BN-Inception preprocessing from raw 0-255 input (keras.ops only; eager, tf.data, graph).

    Args:
        x: uint8 or float, channels last. rgb: [..., 3] RGB. flow / warped_flow: [..., 2L] raw
            encoded 0-255 x/y values. rgbdiff: [..., 3(L+1)] stacked RGB frames.
        modality: "rgb", "flow", "warped_flow" or "rgbdiff".

    Returns:
        float32. rgb: BGR minus [104, 117, 128]. flow: minus 128. rgbdiff: differences of
        consecutive BGR frames (the mean cancels), 3L channels in [-255, 255].
    """
    x = ops.cast(x, "float32")
    if modality == "rgb":
        return _bgr_minus_mean(x)
    if modalities.is_flow(modality):
        return x - FLOW_MEAN
    return rgb_frame_differences(x, _bgr_minus_mean)
