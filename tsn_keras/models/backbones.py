"""Backbones by name, their preprocessing, and TSN's cross-modality initialisation.

Every backbone built by `build_backbone` maps a preprocessed image batch [N, H, W, C] to pooled
features [N, D]. Names:

| name         | network                                  | rgb preprocessing                      |
|--------------|------------------------------------------|----------------------------------------|
| bn_inception | `bn_inception.BNInception` (TSN's)       | BGR, minus [104, 117, 128]             |
| resnet50     | keras.applications.ResNet50              | BGR, minus [103.939, 116.779, 123.68]  |
| inception_v3 | keras.applications.InceptionV3           | x / 127.5 - 1                          |
| mobilenet_v2 | keras.applications.MobileNetV2           | x / 127.5 - 1                          |
| tiny         | `TinyBackbone`: 3 x conv+BN+ReLU, ~6.8k  | x / 255                                |
|              | parameters, for tests and the demo       |                                        |

Other modalities follow one rule per backbone:
- flow / warped_flow (raw encoded 0-255 values): centred at the encoding's zero (128) on the
  scale of that backbone's RGB input: minus 128 for bn_inception and resnet50, (x - 127.5) /
  127.5 for inception_v3 and mobilenet_v2, (x - 128) / 128 for tiny;
- rgbdiff (L+1 stacked RGB frames): differences of consecutive frames after the backbone's RGB
  preprocessing, so a mean cancels and the scale is the RGB scale (tsn-pytorch's `_get_diff`).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import keras
from keras import layers, ops

from tsn_keras import modalities
from tsn_keras.models import bn_inception, transfer

BACKBONES = ("bn_inception", "resnet50", "inception_v3", "mobilenet_v2", "tiny")
_CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
_KERAS_APPLICATIONS = {
    "resnet50": "ResNet50",
    "inception_v3": "InceptionV3",
    "mobilenet_v2": "MobileNetV2",
}
_TINY_FILTERS = (8, 16, 32)


def _caffe_bgr(x):
    return ops.flip(x, axis=-1) - ops.convert_to_tensor(_CAFFE_BGR_MEAN, dtype=x.dtype)


def _symmetric_unit(x):
    return x / 127.5 - 1.0


def _unit(x):
    return x / 255.0


# backbone -> (per-frame rgb preprocessing, flow preprocessing)
_PREPROCESS: dict[str, tuple[Callable, Callable]] = {
    "resnet50": (_caffe_bgr, lambda x: x - 128.0),
    "inception_v3": (_symmetric_unit, _symmetric_unit),
    "mobilenet_v2": (_symmetric_unit, _symmetric_unit),
    "tiny": (_unit, lambda x: (x - 128.0) / 128.0),
}


def preprocess_input(x, backbone: str = "bn_inception", modality: str = "rgb"):
    """THE preprocessing of tsn_keras: raw 0-255 input -> float32 ready for the backbone.

    keras.ops only, so it runs eagerly, inside tf.data and inside a SavedModel graph.

    Args:
        x: uint8 or float, channels last, any leading dims. rgb: RGB 0-255 [..., 3]. flow /
            warped_flow: raw encoded 0-255 x/y values [..., 2L]. rgbdiff: L+1 stacked RGB frames
            [..., 3(L+1)].
        backbone: One of BACKBONES.
        modality: One of "rgb", "flow", "warped_flow", "rgbdiff".

    Returns:
        float32 [..., C'] with C' = 3, 2L or 3L (see the module docstring for each backbone).
    """
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {BACKBONES}. Received: backbone={backbone!r}")
    if backbone == "bn_inception":
        return bn_inception.preprocess_bn_inception(x, modality)
    rgb_fn, flow_fn = _PREPROCESS[backbone]
    x = ops.cast(x, "float32")
    if modalities.check(modality) == "rgb":
        return rgb_fn(x)
    if modalities.is_flow(modality):
        return flow_fn(x)
    return bn_inception.rgb_frame_differences(x, rgb_fn)


def TinyBackbone(
    input_shape: tuple[int | None, int | None, int] = (None, None, 3),
    weights: str | None = None,
    name: str = "tiny",
) -> keras.Model:
    """A ~6k-parameter conv net (3 x conv3x3/2 + BN + ReLU, global average pool) -> [N, 32].

    For tests and the demo: fast on CPU at 64-112 px; any input side >= 8 works. Its first BN is
    `tiny_conv1_bn`, so partial BN and cross-modality init behave as for the real backbones.

    Args:
        input_shape: (height, width, channels).
        weights: None or a `.weights.h5` path (3-channel files initialise other channel counts
            by cross-modality init).
        name: Model name.
    """
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = inputs
    for i, filters in enumerate(_TINY_FILTERS, start=1):
        x = layers.Conv2D(filters, 3, strides=2, padding="same", name=f"tiny_conv{i}")(x)
        x = layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name=f"tiny_conv{i}_bn")(x)
        x = layers.ReLU(name=f"tiny_relu{i}")(x)
    x = layers.GlobalAveragePooling2D(name="global_pool")(x)
    model = keras.Model(inputs, x, name=name)
    if weights is not None:
        transfer.load_weights(
            model, weights, lambda: TinyBackbone(tuple(input_shape[:2]) + (3,), weights, name)
        )
    return model


def build_backbone(
    name: str,
    input_shape: tuple[int | None, int | None, int],
    weights: str | None = None,
) -> keras.Model:
    """Builds a backbone by name: preprocessed images [N, H, W, C] -> pooled features [N, D].

    Args:
        name: One of BACKBONES.
        input_shape: (height, width, channels); channels 3 (rgb), 2L (flow), 3L (rgbdiff).
        weights: None (random init), a local `.weights.h5` path, or "imagenet" (keras.applications
            backbones only; downloads, so the machine must be online). With channels != 3 the
            weights must be RGB ones (or match the channel count): the network is built with
            random weights and initialised from the RGB network by `cross_modality_init`.

    Returns:
        keras.Model with output [N, D] (D = 1024 bn_inception, 2048 resnet50 / inception_v3,
        1280 mobilenet_v2, 32 tiny).
    """
    input_shape = tuple(input_shape)
    if name not in BACKBONES:
        raise ValueError(f"backbone must be one of {BACKBONES}. Received: backbone={name!r}")
    if name == "bn_inception":
        return bn_inception.BNInception(
            include_top=False,
            weights=weights,
            input_shape=input_shape,
            input_channels=input_shape[-1],
            pooling="avg",
        )
    if name == "tiny":
        return TinyBackbone(input_shape, weights=weights)
    if weights is not None and weights != "imagenet" and not os.path.isfile(weights):
        raise FileNotFoundError(
            f"Backbone weights file {weights!r} does not exist; pass a .weights.h5 path of a "
            f"keras.applications {_KERAS_APPLICATIONS[name]}, 'imagenet', or no weights."
        )
    app = getattr(keras.applications, _KERAS_APPLICATIONS[name])
    if input_shape[-1] == 3 or weights is None:
        return app(include_top=False, weights=weights, input_shape=input_shape, pooling="avg")
    model = app(include_top=False, weights=None, input_shape=input_shape, pooling="avg")
    rgb = app(include_top=False, weights=weights, input_shape=input_shape[:2] + (3,), pooling="avg")
    transfer.cross_modality_init(rgb, model)
    return model
