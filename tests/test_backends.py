"""The model code on every Keras 3 backend: a TSN model saved under TensorFlow (weights and
`.keras`) loads under JAX and PyTorch, each in its own process, and gives the same outputs;
`tsn_keras.models` imports no TensorFlow there."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from tsn_keras.models import TSNConfig, build_tsn, preprocess_input

# Runs in a fresh process under KERAS_BACKEND=<backend>. For each case of spec.json: builds
# the model from its config, loads the weights saved under TensorFlow, and scores the raw
# input; also reloads the .keras file. Writes outputs.npz and whether TensorFlow was imported.
CHILD = r"""
import json, sys
import numpy as np
import keras
import tsn_keras.models
from tsn_keras.models import TSNConfig, build_tsn, preprocess_input

spec = json.load(open(sys.argv[1]))
out = {}
for case in spec["cases"]:
    config = TSNConfig(**case["config"])
    x = preprocess_input(np.load(case["input"]), config.backbone, config.modality)
    model = build_tsn(config)
    model.load_weights(case["weights"])
    out[case["name"]] = keras.ops.convert_to_numpy(model(x, training=False))
    if case["keras"]:
        reloaded = keras.saving.load_model(case["keras"])  # safe_mode=True
        out[case["name"] + ".keras"] = keras.ops.convert_to_numpy(reloaded(x, training=False))
np.savez(sys.argv[2], **out)
print(json.dumps({"backend": keras.backend.backend(),
                  "tensorflow_imported": "tensorflow" in sys.modules}))
"""

CONSENSUS = ("avg", "max", "weighted", "topk:2")


def _save_cases(tmp_path, configs: dict[str, TSNConfig], keras_file: bool) -> tuple[str, dict]:
    """Builds each model under TensorFlow with non-trivial weights, saves it (and its .keras
    file if asked), and returns the spec file for the child and the TensorFlow outputs."""
    rng = np.random.default_rng(0)
    cases, expected = [], {}
    for name, config in configs.items():
        keras.utils.set_random_seed(1)
        model = build_tsn(config)
        for w in model.weights:  # every weight random, BN statistics included
            value = rng.normal(0, 0.5, w.shape)
            if "variance" in w.path:
                value = np.abs(value) + 0.5
            w.assign(value.astype("float32"))
        channels = 3 if config.modality == "rgb" else 3 * (config.snippet_length + 1)
        size = config.input_size
        raw = rng.integers(0, 256, (2, config.num_segments, size, size, channels), np.uint8)
        paths = {k: str(tmp_path / f"{name}.{k}") for k in ("npy", "weights.h5", "keras")}
        np.save(paths["npy"], raw)
        model.save_weights(paths["weights.h5"])
        if keras_file:
            model.save(paths["keras"])
        x = preprocess_input(raw, config.backbone, config.modality)
        expected[name] = keras.ops.convert_to_numpy(model(x, training=False))
        cases.append(
            {
                "name": name,
                "config": {
                    k: getattr(config, k)
                    for k in (
                        "num_classes",
                        "modality",
                        "backbone",
                        "input_size",
                        "num_segments",
                        "snippet_length",
                        "consensus",
                        "dropout",
                    )
                },  # fmt: skip
                "input": paths["npy"],
                "weights": paths["weights.h5"],
                "keras": paths["keras"] if keras_file else None,
            }
        )
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"cases": cases}))
    return str(spec), expected


def _run_child(backend: str, spec: str, tmp_path) -> tuple[dict, dict]:
    out = tmp_path / f"{backend}.npz"
    env = {**os.environ, "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu"}
    result = subprocess.run(
        [sys.executable, "-c", CHILD, spec, str(out)], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    with np.load(out) as data:
        return report, dict(data)


def _check(backend, configs, tmp_path, atol, keras_file=True):
    pytest.importorskip(backend)
    spec, expected = _save_cases(tmp_path, configs, keras_file)
    report, outputs = _run_child(backend, spec, tmp_path)
    assert report == {"backend": backend, "tensorflow_imported": False}
    for name, want in expected.items():
        scale = np.abs(want).max()
        np.testing.assert_allclose(outputs[name], want, atol=atol * scale, err_msg=name)
        if keras_file:
            np.testing.assert_allclose(
                outputs[name + ".keras"], want, atol=atol * scale, err_msg=name
            )


def _one_per_consensus(prefix: str, **config) -> dict[str, TSNConfig]:
    """{prefix_<consensus>: an RGB TSNConfig with that consensus} for every CONSENSUS."""
    return {
        f"{prefix}_{c.replace(':', '')}": TSNConfig(
            modality="rgb", consensus=c, dropout=0.5, **config
        )
        for c in CONSENSUS
    }


TINY = _one_per_consensus("tiny_rgb", num_classes=5, backbone="tiny", input_size=32, num_segments=3)
TINY["tiny_rgbdiff_avg"] = TSNConfig(
    num_classes=5, modality="rgbdiff", backbone="tiny", input_size=32, num_segments=3,
    snippet_length=2, dropout=0.5,
)  # fmt: skip


def test_model_code_imports_no_tensorflow():
    """The fast guard: under JAX, `tsn_keras.models` (and the package) import no TensorFlow."""
    pytest.importorskip("jax")
    code = (
        "import sys, tsn_keras.models, keras; "
        "print(keras.backend.backend(), 'tensorflow' in sys.modules)"
    )
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["jax", "False"]


# ~15 s of CPU per backend (a fresh process compiles every model): slow, run by CI.
@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_tiny_tsn_same_outputs_on_other_backends(backend, tmp_path):
    _check(backend, TINY, tmp_path, atol=1e-5)


# Minutes per backend on 2 cores (each BN-Inception is built under TF and again in the child);
# weights only: the .keras path is the same code as for the tiny models.
@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_bn_inception_tsn_same_outputs_on_other_backends(backend, tmp_path):
    configs = _one_per_consensus(
        "bn_inception", num_classes=7, backbone="bn_inception", input_size=224, num_segments=2
    )
    _check(backend, configs, tmp_path, atol=1e-4, keras_file=False)
