"""BN-Inception: structure, parameter counts, pooling semantics and preprocessing."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import torch

from tsn_keras.models import BNInception, preprocess_input
from tsn_keras.models.backbones import BACKBONES
from tsn_keras.models.bn_inception import CeilMaxPooling2D, check_input_size

# Per-stage outputs at 224x224 (docs/design.md: 3a..5b channels 256 ... 1024).
STAGES_224 = {
    "pool1_3x3_s2": (56, 56, 64),
    "pool2_3x3_s2": (28, 28, 192),
    "inception_3a_output": (28, 28, 256),
    "inception_3b_output": (28, 28, 320),
    "inception_3c_output": (14, 14, 576),
    "inception_4a_output": (14, 14, 576),
    "inception_4b_output": (14, 14, 576),
    "inception_4c_output": (14, 14, 608),
    "inception_4d_output": (14, 14, 608),
    "inception_4e_output": (7, 7, 1056),
    "inception_5a_output": (7, 7, 1024),
    "inception_5b_output": (7, 7, 1024),
}


@pytest.fixture(scope="module")
def model224():
    return BNInception(input_shape=(224, 224, 3), classifier_activation=None)


def _params(variables) -> int:
    return sum(int(np.prod(v.shape)) for v in variables)


def test_parameter_counts(model224):
    """PyTorch counts parameters (not BN running stats): 10,270,240 + a 1000-way head."""
    head = model224.get_layer("last_linear")
    assert _params(model224.trainable_weights) == 11_295_240
    assert _params(model224.trainable_weights) - _params(head.trainable_weights) == 10_270_240
    bns = [lay for lay in model224.layers if isinstance(lay, keras.layers.BatchNormalization)]
    # Running mean/var (20,032 numbers) are non-trainable weights, as in PyTorch's buffers.
    assert _params(model224.non_trainable_weights) == sum(2 * b.gamma.shape[0] for b in bns)


def test_structure(model224):
    convs = [lay for lay in model224.layers if isinstance(lay, keras.layers.Conv2D)]
    bns = [lay for lay in model224.layers if isinstance(lay, keras.layers.BatchNormalization)]
    assert len(convs) == len(bns) == 69
    assert all(c.use_bias for c in convs)
    assert {b.epsilon for b in bns} == {1e-5}
    assert {b.name for b in bns} == {f"{c.name}_bn" for c in convs}
    assert convs[0].name == "conv1_7x7_s2" and convs[-1].name == "inception_5b_pool_proj"
    assert isinstance(model224.get_layer("inception_5b_pool"), CeilMaxPooling2D)
    assert isinstance(model224.get_layer("inception_5a_pool"), keras.layers.AveragePooling2D)
    for name, shape in STAGES_224.items():
        assert model224.get_layer(name).output.shape[1:] == shape, name
    assert model224.output.shape[1:] == (1000,)


def test_rgbdiff_input_at_a_non_square_size():
    """15 input channels, dynamic input size, 256x320 input."""
    diff = BNInception(include_top=False, input_channels=15, pooling=None)
    assert diff.get_layer("conv1_7x7_s2").kernel.shape == (7, 7, 15, 64)
    assert diff(np.zeros((1, 256, 320, 15), np.float32)).shape == (1, 8, 10, 1024)


@pytest.mark.parametrize("size", [224, 225, 256, 288, 320, 32])
def test_valid_sizes(size):
    check_input_size(size)


@pytest.mark.parametrize("size", [240, 232, 16])
def test_invalid_sizes_are_rejected_with_alternatives(size):
    with pytest.raises(ValueError, match=f"Received: input_shape height side={size}"):
        BNInception(input_shape=(size, 224, 3))


def test_constructor_validation():
    with pytest.raises(ValueError, match="input_channels"):
        BNInception(input_shape=(224, 224, 3), input_channels=10)
    with pytest.raises(ValueError, match="convert_weights.py"):
        BNInception(weights="imagenet")
    with pytest.raises(FileNotFoundError, match="convert_weights.py"):
        BNInception(weights="/nonexistent/bn.weights.h5")


@pytest.mark.parametrize(
    "size,pool,stride,pad", [(s, 3, 2, 0) for s in range(5, 12)] + [(7, 3, 1, 1), (8, 3, 1, 1)]
)
def test_ceil_max_pool_matches_torch_ceil_mode(size, pool, stride, pad):
    """Odd and even sizes; negative inputs show the padding never wins a max."""
    x = np.random.default_rng(size).normal(size=(2, size, size + 1, 3)).astype(np.float32) - 5
    got = CeilMaxPooling2D(pool, stride, pad)(x)
    want = torch.nn.functional.max_pool2d(
        torch.from_numpy(x.transpose(0, 3, 1, 2)), pool, stride, pad, ceil_mode=True
    )
    np.testing.assert_array_equal(np.asarray(got), want.numpy().transpose(0, 2, 3, 1))


def test_bn_inception_preprocessing_values():
    rgb = np.array([[[10, 20, 30]]], np.uint8)  # R, G, B
    np.testing.assert_allclose(
        preprocess_input(rgb), [[[30 - 104, 20 - 117, 10 - 128]]]
    )  # BGR - mean
    flow = np.arange(10, dtype=np.uint8).reshape(1, 1, 10) + 120
    np.testing.assert_allclose(preprocess_input(flow, modality="flow"), flow - 128.0)
    frames = np.random.default_rng(0).integers(0, 256, (2, 4, 4, 18)).astype(np.uint8)
    diff = np.asarray(preprocess_input(frames, modality="rgbdiff"))
    f = frames.astype(np.float32).reshape(2, 4, 4, 6, 3)[..., ::-1]  # BGR frames
    np.testing.assert_allclose(diff, (f[..., 1:, :] - f[..., :-1, :]).reshape(2, 4, 4, 15))


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize(
    "modality,channels,out", [("rgb", 3, 3), ("flow", 10, 10), ("rgbdiff", 18, 15)]
)
def test_preprocess_same_in_tf_data_as_eager(backbone, modality, channels, out):
    x = np.random.default_rng(1).integers(0, 256, (2, 8, 8, channels)).astype(np.uint8)
    eager = np.asarray(preprocess_input(x, backbone, modality))
    ds = tf.data.Dataset.from_tensors(x).map(lambda t: preprocess_input(t, backbone, modality))
    graph = next(iter(ds)).numpy()
    assert eager.dtype == graph.dtype == np.float32 and eager.shape == (2, 8, 8, out)
    np.testing.assert_allclose(eager, graph, rtol=1e-6)
    if modality == "rgbdiff":  # differences of the per-frame rgb preprocessing
        frames = [preprocess_input(x[..., 3 * i : 3 * i + 3], backbone) for i in range(6)]
        want = np.concatenate(
            [np.asarray(frames[i + 1]) - np.asarray(frames[i]) for i in range(5)], -1
        )
        np.testing.assert_allclose(eager, want, atol=1e-5)


def test_preprocess_rejects_unknown_names():
    with pytest.raises(ValueError, match="Received: backbone='vgg'"):
        preprocess_input(np.zeros((1, 3)), "vgg")
    with pytest.raises(ValueError, match="Received: modality='depth'"):
        preprocess_input(np.zeros((1, 3)), "tiny", "depth")
    with pytest.raises(ValueError, match="Received: 10 channels"):
        preprocess_input(np.zeros((1, 10)), "bn_inception", "rgbdiff")
