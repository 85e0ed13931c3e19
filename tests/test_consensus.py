"""The consensus layer against numpy, its K generalisation, validation and serialisation."""

import keras
import numpy as np
import pytest

from tsn_keras.models import Consensus


def _scores(k: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(2, k, 5)).astype(np.float32)  # [B, K, N]


def _numpy_weighted(x: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """The documented rule: interpolate softmax(theta) at each snippet's relative position."""
    k0, k = len(theta), x.shape[1]
    w0 = np.exp(theta) / np.exp(theta).sum()
    t = np.clip((np.arange(k) + 0.5) / k * k0 - 0.5, 0, k0 - 1)
    w = np.interp(t, np.arange(k0), w0)
    return np.einsum("bkn,k->bn", x, w / w.sum())


@pytest.mark.parametrize("k", [1, 3, 25])
@pytest.mark.parametrize(
    "mode,kwargs,reference",
    [
        ("avg", {}, lambda x: x.mean(1)),
        ("max", {}, lambda x: x.max(1)),
        ("topk", {"k": 2}, lambda x: np.sort(x, 1)[:, -2:].mean(1)),
        ("weighted", {"num_segments": 3}, lambda x: x.mean(1)),  # initial weights: uniform
    ],
)
def test_modes_match_numpy(mode, kwargs, reference, k):
    x = _scores(k)
    np.testing.assert_allclose(Consensus(mode, **kwargs)(x), reference(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("k", [3, 25, 2, 1])
def test_learned_weights_apply_at_any_k(k):
    layer = Consensus("weighted", num_segments=3)
    layer.build((None, None, 5))
    theta = np.array([0.5, -1.0, 2.0], np.float32)
    layer.segment_logits.assign(theta)
    x = _scores(k, seed=k)
    np.testing.assert_allclose(layer(x), _numpy_weighted(x, theta), rtol=1e-5, atol=1e-6)
    w = np.asarray(layer.segment_weights(k))
    assert w.shape == (k,) and abs(w.sum() - 1) < 1e-6
    if k == 3:  # at the trained K the weights are exactly softmax(theta)
        np.testing.assert_allclose(w, np.exp(theta) / np.exp(theta).sum(), rtol=1e-6)


def test_topk_with_fewer_snippets_than_k_averages_all():
    x = _scores(2)
    np.testing.assert_allclose(Consensus("topk", k=5)(x), x.mean(1), rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"mode": "median"}, "Received: mode='median'"),
        ({"mode": "weighted"}, "Received: num_segments=None"),
        ({"mode": "weighted", "num_segments": 0}, "Received: num_segments=0"),
        ({"mode": "topk"}, "Received: k=None"),
        ({"mode": "topk", "k": 2.5}, "Received: k=2.5"),
    ],
)
def test_constructor_validates(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Consensus(**kwargs)


def test_weighted_consensus_trains_and_survives_keras_file(tmp_path):
    """In a model with dynamic K: gradients reach the weights; .keras keeps config and values."""
    inputs = keras.Input((None, 4))  # [B, K, N]
    model = keras.Model(inputs, Consensus("weighted", num_segments=3, name="c")(inputs))
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse")
    x = _scores(3)[..., :4]
    model.train_on_batch(x, np.zeros((2, 4), np.float32) + 10.0)
    theta = model.get_layer("c").segment_logits.numpy()
    assert np.abs(theta).max() > 0
    path = str(tmp_path / "c.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    layer = loaded.get_layer("c")
    assert (layer.mode, layer.num_segments, layer.k) == ("weighted", 3, None)
    np.testing.assert_array_equal(layer.segment_logits.numpy(), theta)
    x25 = _scores(25)[..., :4]
    np.testing.assert_allclose(loaded(x25), model(x25), rtol=1e-6)
    np.testing.assert_allclose(loaded(x25), _numpy_weighted(x25, theta), rtol=1e-5, atol=1e-6)


def test_get_config_round_trip():
    layer = Consensus("topk", k=3, name="top3")
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(clone, Consensus) and clone.get_config() == layer.get_config()
