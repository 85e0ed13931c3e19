"""Weight conversion: parity with pretrainedmodels' BN-Inception, and the converter's checks."""

import importlib.util
import os

import numpy as np
import pytest
import torch

from tsn_keras.models import (
    BNInception,
    TSNConfig,
    build_tsn,
    load_classifier_weights,
    param_groups,
)
from tsn_keras.models import preprocess_input as tsn_preprocess
from tsn_keras.models.transfer import batch_norm_layers
from tsn_keras.models.weights import ConversionError, convert_state_dict

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def convert_cli():
    """Runs the converter command's main in this process (no second TF import)."""
    from tsn_keras.models.weights import main

    return lambda *args: main(["convert_weights.py", *args])


def _reference_module():
    """pretrainedmodels/models/bninception.py, loaded alone (the package wants torchvision)."""
    spec = importlib.util.find_spec("pretrainedmodels")
    assert spec is not None, "pip install --no-deps pretrainedmodels==0.7.4 (scripts/setup_env.sh)"
    path = os.path.join(os.path.dirname(spec.origin), "models", "bninception.py")
    module_spec = importlib.util.spec_from_file_location("_bninception_reference", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def reference():
    """A seeded random pretrainedmodels BN-Inception with realistic random BN statistics.

    Random gamma/beta first; then the running statistics are calibrated on a batch of random
    images (train mode, momentum 1: running stats = batch stats, so activations stay O(1-10)
    through the 69 layers instead of exploding), then perturbed so they are not exact batch
    statistics.
    """
    torch.manual_seed(0)
    net = _reference_module().BNInception(num_classes=1000)
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    images = np.random.default_rng(123).integers(0, 256, size=(2, 224, 224, 3), dtype=np.uint8)
    calib = np.asarray(tsn_preprocess(images, "bn_inception", "rgb")).transpose(0, 3, 1, 2)
    with torch.no_grad():
        for bn in bns:
            bn.momentum = 1.0
            bn.weight.copy_(torch.empty(bn.num_features).uniform_(0.5, 1.5))
            bn.bias.copy_(0.2 * torch.randn(bn.num_features))
        net.train()
        net.features(torch.from_numpy(calib.copy()))
        for bn in bns:
            bn.running_var.mul_(torch.empty(bn.num_features).uniform_(0.8, 1.25))
            bn.running_mean.add_(0.1 * torch.randn(bn.num_features) * bn.running_var.sqrt())
        net.last_linear.bias.copy_(0.1 * torch.randn(1000))
    net.eval()
    return net


def _assert_close(got: np.ndarray, want: np.ndarray, what: str) -> None:
    """Max |got - want| <= 1e-4 of the reference's largest magnitude.

    float32 rounding through 69 layers puts PyTorch itself ~1e-5 (relative) away from a
    float64 run of the same network, so an absolute 1e-4 is below the reference's own noise
    when features reach ~20; the bound is relative to the tensor's scale.
    """
    scale = float(np.abs(want).max())
    err = float(np.abs(got - want).max())
    assert err <= 1e-4 * scale, f"{what}: max |diff| {err:.3g} > 1e-4 * max |ref| {scale:.3g}"


@pytest.fixture(scope="module")
def converted(reference, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("w") / "bninception.weights.h5")
    report = convert_state_dict(reference.state_dict(), path)
    assert report.classes == 1000 and report.input_channels == 3
    assert report.classifier_source == "last_linear." and not report.unused
    assert len(report.skipped) == 69  # num_batches_tracked, one per BN
    return path


@pytest.mark.slow
def test_parity_with_pretrainedmodels(reference, converted):
    """Features and logits of our converted BNInception match PyTorch at 224 and 256x320."""
    model = BNInception(weights=converted, classifier_activation=None)
    import keras

    both = keras.Model(model.input, [model.get_layer("inception_5b_output").output, model.output])
    rng = np.random.default_rng(0)
    for height, width in ((224, 224), (256, 320)):
        image = rng.integers(0, 256, size=(1, height, width, 3), dtype=np.uint8)  # RGB
        x = np.asarray(tsn_preprocess(image, "bn_inception", "rgb"))  # BGR - mean
        np.testing.assert_allclose(x[..., 0], image[..., 2] - 104.0)
        with torch.no_grad():
            feats = reference.features(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))
            logits = reference.last_linear(feats.mean(dim=(2, 3)))
            if (height, width) == (224, 224):  # the reference's own 7x7 pool head
                torch.testing.assert_close(reference.logits(feats), logits)
        want_f = feats.numpy().transpose(0, 2, 3, 1)
        got_f, got_l = (np.asarray(t) for t in both(x, training=False))
        assert got_f.shape == want_f.shape == (1, height // 32, width // 32, 1024)
        assert np.abs(want_f).max() > 0.1  # activations are not vanishing
        _assert_close(got_f, want_f, f"features at {height}x{width}")
        _assert_close(got_l, logits.numpy(), f"logits at {height}x{width}")


@pytest.mark.slow
def test_parity_in_float64_is_exact(reference, converted):
    """In float64 both networks agree to ~1e-12: the float32 gap above is rounding only."""
    import copy

    import keras

    keras.config.set_dtype_policy("float64")
    try:
        model = BNInception(weights=converted, classifier_activation=None)
    finally:
        keras.config.set_dtype_policy("float32")
    image = np.random.default_rng(5).integers(0, 256, size=(1, 256, 320, 3), dtype=np.uint8)
    x = np.asarray(tsn_preprocess(image, "bn_inception", "rgb")).astype(np.float64)
    with torch.no_grad():
        ref64 = copy.deepcopy(reference).double()
        features = ref64.features(torch.from_numpy(x.transpose(0, 3, 1, 2)))
        logits = ref64.last_linear(features.mean(dim=(2, 3)))  # its 7x7 pool fits 224 only
    got = np.asarray(model(x, training=False))
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, logits.numpy(), rtol=0, atol=1e-9)


@pytest.mark.slow
def test_rgb_file_initialises_flow_tsn_by_cross_modality(reference, converted):
    """The converted RGB file -> a flow TSN: conv1 = the RGB kernel's channel mean x 10."""
    model = build_tsn(TSNConfig(num_classes=5, modality="flow", backbone_weights=converted))
    backbone = model.get_layer("bn_inception")
    rgb = reference.conv1_7x7_s2.weight.detach().numpy().transpose(2, 3, 1, 0)  # [7, 7, 3, 64]
    want = np.repeat(rgb.mean(axis=2, keepdims=True), 10, axis=2)
    np.testing.assert_allclose(backbone.get_layer("conv1_7x7_s2").kernel.numpy(), want, rtol=1e-6)
    np.testing.assert_array_equal(
        backbone.get_layer("conv1_7x7_s2").bias.numpy(),
        reference.conv1_7x7_s2.bias.detach().numpy(),
    )
    np.testing.assert_array_equal(
        backbone.get_layer("inception_5b_pool_proj_bn").moving_variance.numpy(),
        reference.inception_5b_pool_proj_bn.running_var.detach().numpy(),
    )
    # Partial BN on BN-Inception: conv1's BN is the only one that trains.
    bns = batch_norm_layers(model)
    assert len(bns) == 69 and [b.name for b in bns if b.trainable] == ["conv1_7x7_s2_bn"]
    groups = {g.name: g for g in param_groups(model, "flow")}
    assert [v.path for v in groups["bn"].variables] == [
        "conv1_7x7_s2_bn/gamma",
        "conv1_7x7_s2_bn/beta",
    ]
    assert [v.path for v in groups["first_conv_weight"].variables] == ["conv1_7x7_s2/kernel"]
    assert len(groups["weights"].variables) == 69  # 68 other convs + the classifier
    with pytest.raises(ValueError, match=r"shape \(1024, 5\) \(found \(1024, 1000\)\)"):
        load_classifier_weights(model, converted)


def test_missing_and_unused_keys_are_named(reference, tmp_path):
    state = dict(reference.state_dict())
    del state["inception_4a_3x3_bn.running_var"]
    state["extra_head.weight"] = torch.zeros(3)
    with pytest.raises(ConversionError) as e:
        convert_state_dict(state, str(tmp_path / "x.weights.h5"), source="my.pth")
    msg = str(e.value)
    assert "my.pth" in msg and "inception_4a_3x3_bn.running_var" in msg
    assert "extra_head.weight" in msg and "--allow_unused" in msg
    assert not os.path.exists(tmp_path / "x.weights.h5")


def test_bad_shape_and_output_name_are_reported(reference, tmp_path):
    state = dict(reference.state_dict())
    state["inception_3a_1x1.bias"] = torch.zeros(65)
    with pytest.raises(ConversionError, match=r"inception_3a_1x1\.bias: shape \(65,\)"):
        convert_state_dict(state, str(tmp_path / "x.weights.h5"))
    with pytest.raises(ConversionError, match="must end in .weights.h5"):
        convert_state_dict(state, str(tmp_path / "x.h5"))


@pytest.mark.slow
def test_missing_classifier_needs_the_flag(reference, tmp_path):
    """tsn-pytorch layout with Caffe-shaped [1, C] BN statistics, classifier dropped."""
    state = {
        k: (v.reshape(1, -1) if k.endswith(("running_mean", "running_var")) else v)
        for k, v in reference.state_dict().items()
        if not k.startswith("last_linear.") and not k.endswith("num_batches_tracked")
    }
    out = str(tmp_path / "backbone.weights.h5")
    with pytest.raises(ConversionError, match="--allow_missing_classifier"):
        convert_state_dict(state, out)
    report = convert_state_dict(state, out, allow_missing_classifier=True)
    assert report.classes is None and len(report.reshaped) == 2 * 69
    model = BNInception(include_top=False, weights=out)
    np.testing.assert_array_equal(
        model.get_layer("conv2_3x3_bn").moving_mean.numpy(),
        reference.conv2_3x3_bn.running_mean.detach().numpy(),
    )


@pytest.mark.slow
def test_tsn_flow_checkpoint_loads_into_tsn_builder(reference, tmp_path, convert_cli, capsys):
    """module.base_model.* + module.new_fc.* with a 10-channel conv1 -> TSN flow model."""
    base = {
        f"module.base_model.{k}": v
        for k, v in reference.state_dict().items()
        if not k.startswith("last_linear.")
    }
    rng = np.random.default_rng(1)
    conv1 = rng.normal(size=(64, 10, 7, 7)).astype(np.float32)
    base["module.base_model.conv1_7x7_s2.weight"] = torch.from_numpy(conv1)
    fc_w = rng.normal(size=(7, 1024)).astype(np.float32)
    fc_b = rng.normal(size=(7,)).astype(np.float32)
    base["module.new_fc.weight"] = torch.from_numpy(fc_w)
    base["module.new_fc.bias"] = torch.from_numpy(fc_b)
    path = str(tmp_path / "tsn_flow.pth")
    torch.save({"epoch": 80, "arch": "BNInception", "state_dict": base}, path)
    out = str(tmp_path / "tsn_flow.weights.h5")
    convert_cli(f"--input={path}", f"--output={out}")
    stdout = capsys.readouterr().out
    assert "10 input channels" in stdout and "7-way classifier from new_fc." in stdout

    model = build_tsn(TSNConfig(num_classes=7, modality="flow", backbone_weights=out))
    load_classifier_weights(model, out)
    np.testing.assert_allclose(model.get_layer("classifier").kernel.numpy(), fc_w.T)
    np.testing.assert_allclose(model.get_layer("classifier").bias.numpy(), fc_b)
    backbone = model.get_layer("bn_inception")  # the file's classifier is not part of it
    kernel = backbone.get_layer("conv1_7x7_s2").kernel.numpy()
    np.testing.assert_allclose(kernel, conv1.transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(
        backbone.get_layer("inception_5b_pool_proj_bn").moving_variance.numpy(),
        reference.inception_5b_pool_proj_bn.running_var.detach().numpy(),
    )


def test_converter_command_line_reports_missing_keys(tmp_path, convert_cli, capsys):
    path = str(tmp_path / "partial.pth")
    torch.save({"conv1_7x7_s2.weight": torch.zeros(64, 3, 7, 7)}, path)
    assert convert_cli(f"--input={path}", f"--output={tmp_path / 'o.weights.h5'}") == 1
    msg = capsys.readouterr().err
    assert msg.startswith("error: ") and path in msg
    assert "missing keys" in msg and "inception_5b_pool_proj_bn.bias" in msg
