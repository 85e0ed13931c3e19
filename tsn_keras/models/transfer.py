"""Weight transfer between backbones: loading a weights file, TSN's cross-modality init.

One module for what every backbone needs when it takes weights: find the leaf layers and the
first convolution, read a `.weights.h5` file's input channel count, and load a file of another
channel count by cross-modality initialisation (TSN section 3.2: conv1 of the flow / RGB
difference network = the RGB conv1 kernel averaged over its 3 input channels, replicated to 2L or
3L channels; every other weight copied). `bn_inception.py` and `backbones.py` both use it and
neither imports the other for it, so data flows one way: transfer <- bn_inception <- backbones.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import keras
import numpy as np
from keras import layers


def load_weights(model: keras.Model, path: str, build_rgb: Callable[[], keras.Model]) -> None:
    """Loads a `.weights.h5` file into `model`, by cross-modality init when the channels differ.

    Args:
        model: The network to fill (any input channel count).
        path: A `.weights.h5` file of the same architecture with the model's input channel
            count, or with 3 (RGB), which then initialises the model by `cross_modality_init`.
        build_rgb: Builds the same architecture with 3 input channels and `path`'s weights
            loaded (called only for cross-modality init).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Weights file {path!r} does not exist.")
    channels = model.input_shape[-1]
    file_channels = weights_file_input_channels(path)
    if file_channels in (None, channels):
        model.load_weights(path)
    elif file_channels == 3:
        cross_modality_init(build_rgb(), model)
    else:
        raise ValueError(
            f"{path} holds a first conv for {file_channels} input channels; the model takes "
            f"{channels}. Only a 3-channel (RGB) file can initialise another modality."
        )


def leaf_layers(model: keras.Model) -> Iterator[layers.Layer]:
    """The model's layers in topological order, nested models expanded."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from leaf_layers(layer)
        else:
            yield layer


def first_conv_layer(model: keras.Model) -> layers.Layer:
    """The first convolution of a backbone (or of a TSN model's backbone)."""
    for layer in leaf_layers(model):
        if isinstance(layer, layers.Conv2D):
            return layer
    raise ValueError(f"Model {model.name!r} has no Conv2D layer.")


def batch_norm_layers(model: keras.Model) -> list[layers.BatchNormalization]:
    """All BatchNormalization layers of a model in topological order, nested models expanded."""
    return [lay for lay in leaf_layers(model) if isinstance(lay, layers.BatchNormalization)]


def cross_modality_kernel(rgb_kernel: np.ndarray, channels: int) -> np.ndarray:
    """TSN cross-modality init: average an RGB conv kernel over its input channels, replicate.

    Args:
        rgb_kernel: [kh, kw, 3, O] (Keras layout).
        channels: Target input channels (10 flow, 15 rgbdiff).

    Returns:
        [kh, kw, channels, O], every input slice equal to the RGB channel mean.
    """
    mean = np.mean(rgb_kernel, axis=2, keepdims=True)
    return np.repeat(mean, channels, axis=2).astype(rgb_kernel.dtype)


def cross_modality_init(source: keras.Model, target: keras.Model) -> None:
    """Copies every weight of an RGB network into the same network with other input channels.

    Layers with weights are matched by position (keras.applications names depend on how many
    models the session built; layers without weights, such as pooling, may differ), each pair is
    checked for the same class and weight shapes, and the first convolution's kernel gets
    `cross_modality_kernel` (its bias is copied as is).

    Args:
        source: The RGB network (3 input channels), weights loaded.
        target: The same architecture with 2L / 3L input channels.
    """
    src = [lay for lay in leaf_layers(source) if lay.weights]
    dst = [lay for lay in leaf_layers(target) if lay.weights]
    if len(src) != len(dst):
        raise ValueError(
            f"cross_modality_init needs the same architecture: {source.name!r} has {len(src)} "
            f"layers with weights, {target.name!r} has {len(dst)}."
        )
    first = first_conv_layer(target)
    for s, d in zip(src, dst, strict=True):
        if type(s) is not type(d):
            raise ValueError(f"Layer mismatch: {s.name} ({type(s).__name__}) vs {d.name}.")
        values = [w.numpy() for w in s.weights]
        if d is first:
            values[0] = cross_modality_kernel(values[0], d.weights[0].shape[2])
        for var, value in zip(d.weights, values, strict=True):
            if tuple(var.shape) != value.shape:
                raise ValueError(
                    f"Weight shape mismatch at layer {d.name}: {var.path} is {tuple(var.shape)}, "
                    f"source has {value.shape}."
                )
            var.assign(value)


def weights_file_input_channels(path: str) -> int | None:
    """Input channels of the first convolution stored in a Keras `.weights.h5` file.

    Keras 3 stores the variables of a functional model's layers under `layers/<class_name>`;
    the first `Conv2D` is `layers/conv2d`. Returns None if the file has no such entry (then the
    caller loads the file as it is and Keras reports any mismatch).
    """
    import h5py

    with h5py.File(path, "r") as f:
        node = f.get("layers/conv2d/vars/0")
        if node is None or len(node.shape) != 4:
            return None
        return int(node.shape[2])
