"""The TSN builder: shapes, K at test time, partial BN, cross-modality init, groups, round trips."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from tsn_keras.models import TSNConfig, build_tsn, param_groups
from tsn_keras.models.backbones import TinyBackbone, build_backbone
from tsn_keras.models.transfer import batch_norm_layers
from tsn_keras.models.tsn import backbone_of

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(backbone="tiny", input_size=32, num_classes=6)


def _snippets(batch: int, k: int, channels: int = 3, size: int = 32, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(batch, k, size, size, channels)).astype(np.float32)


def test_output_is_consensus_of_per_snippet_logits_at_any_k():
    """Folding keeps each video's snippets together; a K=3 model runs at K=25."""
    model = build_tsn(TSNConfig(num_segments=3, **TINY))
    backbone, head = backbone_of(model), model.get_layer("classifier")
    for k in (3, 25):
        x = _snippets(2, k, seed=k)
        got = np.asarray(model(x, training=False))
        assert got.shape == (2, 6) and got.dtype == np.float32
        for b in range(2):
            per_snippet = head(backbone(x[b], training=False))  # [K, N]
            np.testing.assert_allclose(got[b], np.mean(per_snippet, 0), rtol=1e-5, atol=1e-6)


def test_classifier_init_and_dropout_defaults():
    rgb = build_tsn(TSNConfig(**{**TINY, "num_classes": 400}))
    kernel = rgb.get_layer("classifier").kernel.numpy()
    assert abs(kernel.std() - 0.001) < 1e-4 and abs(kernel.mean()) < 1e-4
    assert not rgb.get_layer("classifier").bias.numpy().any()
    assert rgb.get_layer("dropout").rate == 0.8
    flow = build_tsn(TSNConfig(modality="flow", **TINY))
    assert flow.get_layer("dropout").rate == 0.7
    assert flow.input_shape == (None, None, 32, 32, 10)
    none = build_tsn(TSNConfig(dropout=0.0, **TINY))
    assert "dropout" not in [lay.name for lay in none.layers]


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"modality": "depth"}, "Received: 'depth'"),
        ({"backbone": "vgg16"}, "Received: 'vgg16'"),
        ({"consensus": "median"}, "Received: 'median'"),
        ({"consensus": "topk:0"}, "Received: 'topk:0'"),
        ({"dropout": 1.0}, "Received: 1.0"),
        ({"num_segments": 0}, "Received: 0"),
    ],
)
def test_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TSNConfig(num_classes=3, **kwargs)


def _bn_state(model):
    return [
        {
            n: getattr(bn, n).numpy().copy()
            for n in ("gamma", "beta", "moving_mean", "moving_variance")
        }
        for bn in batch_norm_layers(model)
    ]


def _assert_partial_bn_step(model, lr=0.5):
    """One SGD step: the first BN's statistics move; no other BN's statistics, gamma or beta."""
    model.compile(
        optimizer=keras.optimizers.SGD(lr),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    before = _bn_state(model)
    x = _snippets(4, 3, channels=model.input_shape[-1], seed=1) * 3 + 1
    model.train_on_batch(x, np.arange(4) % 6)
    after = _bn_state(model)
    assert not np.allclose(before[0]["moving_mean"], after[0]["moving_mean"])
    assert not np.allclose(before[0]["gamma"], after[0]["gamma"])
    for b, a in zip(before[1:], after[1:], strict=True):
        for name in b:
            np.testing.assert_array_equal(b[name], a[name], err_msg=name)


def test_partial_bn_freezes_all_but_first_bn():
    model = build_tsn(TSNConfig(**TINY))
    bns = batch_norm_layers(model)
    assert [bn.trainable for bn in bns] == [True, False, False]
    _assert_partial_bn_step(model)
    full = build_tsn(TSNConfig(partial_bn=False, **TINY))
    before = _bn_state(full)
    full.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(True))
    full.train_on_batch(_snippets(4, 3, seed=1) * 3 + 1, np.arange(4))
    assert not np.allclose(before[-1]["moving_mean"], _bn_state(full)[-1]["moving_mean"])


def test_partial_bn_survives_keras_file_and_load_weights(tmp_path):
    model = build_tsn(TSNConfig(**TINY))
    path = str(tmp_path / "tsn.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert [bn.trainable for bn in batch_norm_layers(loaded)] == [True, False, False]
    _assert_partial_bn_step(loaded)
    weights = str(tmp_path / "tsn.weights.h5")
    loaded.save_weights(weights)
    fresh = build_tsn(TSNConfig(**TINY))
    fresh.load_weights(weights)
    assert [bn.trainable for bn in batch_norm_layers(fresh)] == [True, False, False]
    _assert_partial_bn_step(fresh)


@pytest.mark.slow
def test_partial_bn_under_mirrored_strategy():
    """Two logical CPUs (needs a fresh process: devices are fixed at TF start-up)."""
    script = textwrap.dedent(
        """
        import numpy as np, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        logical = [tf.config.LogicalDeviceConfiguration()] * 2
        tf.config.set_logical_device_configuration(cpu, logical)
        import keras
        from tsn_keras.models import TSNConfig, build_tsn
        from tsn_keras.models.transfer import batch_norm_layers
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        assert strategy.num_replicas_in_sync == 2
        with strategy.scope():
            model = build_tsn(TSNConfig(num_classes=6, backbone="tiny", input_size=32))
            model.compile(optimizer=keras.optimizers.SGD(0.5),
                          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        bns = batch_norm_layers(model)
        state = lambda: [np.concatenate([v.numpy().ravel() for v in b.weights]) for b in bns]
        before = state()
        x = np.random.default_rng(1).normal(size=(4, 3, 32, 32, 3)).astype("float32") * 3 + 1
        model.fit(x, np.arange(4), batch_size=4, epochs=1, verbose=0)
        after = state()
        assert not np.allclose(before[0], after[0]), "first BN did not adapt"
        for b, a in zip(before[1:], after[1:]):
            np.testing.assert_array_equal(b, a)
        print("MIRRORED_OK")
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert "MIRRORED_OK" in run.stdout, run.stderr[-3000:]


def test_cross_modality_init_from_rgb_weights(tmp_path):
    rgb = TinyBackbone((32, 32, 3))
    rgb.get_layer("tiny_conv2_bn").moving_mean.assign(np.full(16, 0.25, np.float32))
    path = str(tmp_path / "tiny_rgb.weights.h5")
    rgb.save_weights(path)
    for modality, channels in (("flow", 10), ("rgbdiff", 15)):
        model = build_tsn(TSNConfig(modality=modality, backbone_weights=path, **TINY))
        backbone = backbone_of(model)
        kernel = backbone.get_layer("tiny_conv1").kernel.numpy()
        rgb_kernel = rgb.get_layer("tiny_conv1").kernel.numpy()
        assert kernel.shape == (3, 3, channels, 8)
        mean = rgb_kernel.mean(axis=2)
        for c in range(channels):
            np.testing.assert_allclose(kernel[:, :, c], mean, rtol=1e-6)
        np.testing.assert_array_equal(
            backbone.get_layer("tiny_conv1").bias, rgb.get_layer("tiny_conv1").bias
        )
        np.testing.assert_array_equal(
            backbone.get_layer("tiny_conv2").kernel, rgb.get_layer("tiny_conv2").kernel
        )
        np.testing.assert_array_equal(backbone.get_layer("tiny_conv2_bn").moving_mean, 0.25)


def test_keras_applications_backbone_by_name_with_cross_modality(tmp_path):
    """mobilenet_v2 stands for the keras.applications backbones (same code path)."""
    rgb = build_backbone("mobilenet_v2", (32, 32, 3))
    assert rgb.output_shape == (None, 1280)
    path = str(tmp_path / "rgb.weights.h5")
    rgb.save_weights(path)
    flow = build_backbone("mobilenet_v2", (32, 32, 10), weights=path)
    first = [lay for lay in flow.layers if isinstance(lay, keras.layers.Conv2D)][0]
    src = [lay for lay in rgb.layers if isinstance(lay, keras.layers.Conv2D)][0]
    np.testing.assert_allclose(first.kernel[:, :, 7], np.mean(src.kernel, axis=2), rtol=1e-6)
    np.testing.assert_array_equal(flow.layers[-3].weights[0], rgb.layers[-3].weights[0])


@pytest.mark.parametrize("modality", ["rgb", "flow"])
def test_param_groups(modality):
    model = build_tsn(TSNConfig(modality=modality, consensus="weighted", **TINY))
    groups = {g.name: g for g in param_groups(model, modality)}
    mults = {n: (g.lr_mult, g.decay_mult) for n, g in groups.items()}
    assert mults["weights"] == (1, 1) and mults["biases"] == (2, 0) and mults["bn"] == (1, 0)
    assert mults["consensus"] == (1, 0)
    assert [v.path for v in groups["bn"].variables] == ["tiny_conv1_bn/gamma", "tiny_conv1_bn/beta"]
    if modality == "flow":
        assert mults["first_conv_weight"] == (5, 1) and mults["first_conv_bias"] == (10, 0)
        assert [v.path for v in groups["first_conv_weight"].variables] == ["tiny_conv1/kernel"]
        assert [v.path for v in groups["first_conv_bias"].variables] == ["tiny_conv1/bias"]
    else:
        assert "first_conv_weight" not in groups
        assert "tiny_conv1/kernel" in [v.path for v in groups["weights"].variables]
    flat = [id(v) for g in groups.values() for v in g.variables]
    assert len(flat) == len(set(flat)) == len(model.trainable_variables)
    assert set(flat) == {id(v) for v in model.trainable_variables}
    assert all(g.variables for g in groups.values())  # empty groups are left out


def test_keras_file_and_saved_model_round_trip(tmp_path):
    model = build_tsn(TSNConfig(consensus="topk:2", **TINY))
    x = _snippets(2, 5, seed=3)
    want = np.asarray(model(x, training=False))
    path = str(tmp_path / "m.keras")
    model.save(path)
    np.testing.assert_allclose(keras.saving.load_model(path)(x, training=False), want, rtol=1e-6)
    export_dir = str(tmp_path / "export")
    model.export(export_dir, verbose=False)
    reloaded = tf.saved_model.load(export_dir)  # keep a reference: it owns the variables
    served = reloaded.serve(tf.constant(x))
    np.testing.assert_allclose(served, want, rtol=1e-5, atol=1e-6)


def test_mixed_bfloat16_returns_float32_logits():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = build_tsn(TSNConfig(**TINY))
        out = model(_snippets(1, 3), training=False)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert backbone_of(model).get_layer("tiny_conv1").compute_dtype == "bfloat16"
    assert out.dtype == "float32"
