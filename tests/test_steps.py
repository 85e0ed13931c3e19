"""The step functions alone, on one fixed batch of a tiny TSN (no records, no run)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tsn_keras import steps
from tsn_keras.config import TrainConfig
from tsn_keras.models import build_tsn
from tsn_keras.models.transfer import batch_norm_layers

NUM_CLASSES = 3


def _setup(modality="rgb", **overrides):
    config = TrainConfig.for_modality(
        modality, records="r", model_dir="m", backbone="tiny", input_size=32, batch_size=4,
        num_segments=2, lr=0.05, dropout=0.0, epochs=10, **overrides,
    )  # fmt: skip
    keras.utils.set_random_seed(0)
    model = build_tsn(config.tsn_config(NUM_CLASSES, snippet_length=2))
    strategy = tf.distribute.get_strategy()
    optimizer = steps.make_optimizer(config, steps_per_epoch=1)
    fns = steps.make_steps(model, optimizer, strategy, config, NUM_CLASSES)
    channels = model.input_shape[-1] + (3 if modality == "rgbdiff" else 0)
    rng = np.random.default_rng(0)
    views = rng.integers(0, 256, (4, 2, 32, 32, channels)).astype(np.uint8)
    labels = np.array([0, 1, 2, 1], np.int32)
    batches = iter(tf.data.Dataset.from_tensors((views, labels)).repeat())
    return config, model, fns, batches


def test_loss_decreases_on_a_fixed_batch():
    _, _, fns, batches = _setup()
    sums = [fns.train(batches).numpy() for _ in range(8)]
    losses = [s[0] / s[3] for s in sums]
    assert all(s[3] == 4 for s in sums)  # every clip counted
    assert all(b < a for a, b in zip(losses, losses[1:], strict=False)), losses  # each step
    assert losses[-1] < losses[0] - 0.05, losses
    after = fns.evaluate(batches).numpy()
    assert after[3] == 4 and after[0] / 4 < losses[0]


def test_partial_bn_frozen_layers_do_not_move():
    _, model, fns, batches = _setup()
    bns = batch_norm_layers(model)
    before = [[w.numpy().copy() for w in bn.weights] for bn in bns]
    for _ in range(3):
        fns.train(batches)
    trained_ids = {id(v) for v in fns.variables}
    first, frozen = bns[0], bns[1:]
    assert all(id(w) not in trained_ids for bn in frozen for w in bn.weights)  # no gradient
    for bn, old in zip(frozen, before[1:], strict=True):  # nor moving statistics
        for w, o in zip(bn.weights, old, strict=True):
            np.testing.assert_array_equal(w.numpy(), o)
    assert any(
        not np.array_equal(w.numpy(), o) for w, o in zip(first.weights, before[0], strict=True)
    )


@pytest.mark.parametrize("modality", ["rgb", "flow"])
def test_weight_decay_only_on_kernels(modality):
    config, model, fns, _ = _setup(modality)
    for v, decay, mult in zip(fns.variables, fns.decays, fns.lr_mults, strict=True):
        kernel = v.path.endswith("/kernel")
        assert decay == (config.weight_decay if kernel else 0.0), v.path
        first_conv = v.path.startswith("tiny_conv1/")
        if modality == "flow" and first_conv:  # TSN's first conv of a flow net: 5x, bias 10x
            assert mult == (5.0 if kernel else 10.0), v.path
        elif v.path.endswith("/bias"):
            assert mult == 2.0, v.path
    assert len(fns.variables) == len(model.trainable_variables)


def test_weight_decay_pulls_kernels_when_the_gradient_is_zero():
    """With a zero loss gradient, TSN's rule leaves only the L2 term: g = wd * w on kernels,
    nothing on biases."""
    _, model, fns, _ = _setup(weight_decay=0.5, momentum=0.0)
    kernel = model.get_layer("classifier").kernel
    bias = model.get_layer("classifier").bias
    w0, b0 = kernel.numpy().copy(), bias.numpy().copy()
    grads = [tf.zeros_like(v) for v in fns.variables]
    out = steps.transform_gradients(grads, fns.variables, fns.decays, fns.lr_mults, 0.0)
    by_path = {v.path: g for v, g in zip(fns.variables, out, strict=True)}
    np.testing.assert_allclose(by_path[kernel.path], 0.5 * w0, rtol=1e-6)
    np.testing.assert_array_equal(by_path[bias.path], np.zeros_like(b0))
