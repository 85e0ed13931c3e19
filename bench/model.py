"""Throughput of BN-Inception at 224 and of the two ways to run a backbone per snippet.

    python bench/model.py                 # ~2-4 min on 2 CPU cores
    python bench/model.py --batch=16 --iters=5

Prints one table:
- forward and forward+backward images/s of BN-Inception (1000-way head) at 224x224, float32 and
  mixed_bfloat16, with the achieved GFLOP/s (2.03 GMACs = 4.06 GFLOP per image forward, 3x that
  for forward+backward) next to a large matmul's GFLOP/s measured in the same run and dtype;
- a TSN clip batch [B, K=3, 224, 224, 3] through BN-Inception folded into the batch
  (tsn_keras.models.tsn: [B*K, ...]) vs keras.layers.TimeDistributed, forward and
  forward+backward.
Each measurement is the median of --iters timed calls after one warm-up call (tf.function,
Keras' default no-XLA path; docs/design.md: jit_compile fails under MirroredStrategy on CPU). The
calls of one group (matmul / forward / forward+backward of one policy; the four TSN variants)
are timed round-robin so that each sees the same load on shared cores.
"""

import os
import statistics
import time

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

from tsn_keras.models import BNInception, TSNConfig, build_tsn
from tsn_keras.models.consensus import Consensus
from tsn_keras.models.tsn import backbone_of

_BATCH = flags.DEFINE_integer("batch", 8, "Images per step for the BN-Inception rows.")
_CLIPS = flags.DEFINE_integer("clips", 2, "Clips (B) per step for the TSN rows; K = 3.")
_ITERS = flags.DEFINE_integer("iters", 3, "Timed calls per measurement (median reported).")
_MATMUL = flags.DEFINE_integer("matmul", 2048, "Side of the square matmul benchmark.")

GFLOP_FWD = 2 * 2.03  # per 224x224 image
GFLOP_TRAIN = 3 * GFLOP_FWD  # forward + backward (input and weight gradients)


def _block(out) -> None:
    np.asarray(tf.nest.flatten(out)[0])  # wait for the result


def _interleaved_seconds(fns: dict, iters: int) -> dict:
    """Median seconds per call of each function, timed round-robin.

    The machine's cores are shared, so the load changes during a run; timing the functions in
    turn (model step, matmul, model step, ...) gives each the same conditions, which keeps the
    ratios meaningful even when the absolute numbers move.
    """
    for fn in fns.values():
        _block(fn())  # warm-up: tracing
    times = {name: [] for name in fns}
    for _ in range(iters):
        for name, fn in fns.items():
            t = time.perf_counter()
            _block(fn())
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) for name, ts in times.items()}


def _forward_fn(model, x):
    f = tf.function(lambda: model(x, training=False))
    return f


def _train_fn(model, x):
    @tf.function
    def step():
        with tf.GradientTape() as tape:
            y = model(x, training=True)
            loss = tf.reduce_mean(tf.square(tf.cast(y, tf.float32)))
        return tape.gradient(loss, model.trainable_variables)

    return step


def training_step_fn(policy: str, batch: int):
    """One full training step of BN-Inception at 224, as a callable (bench/run_all.py).

    The step bench/torch_reference.py builds for pretrainedmodels' BN-Inception: 1000-way
    logits, every BN in training mode, softmax cross-entropy on random labels, gradients and
    one SGD step (momentum 0.9). The model is built under `policy`; the first call traces.
    """
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = BNInception(input_shape=(224, 224, 3), classifier_activation=None)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    optimizer = keras.optimizers.SGD(learning_rate=1e-3, momentum=0.9)
    x = tf.random.normal((batch, 224, 224, 3)) * 50  # [B, H, W, C]
    labels = tf.random.uniform((batch,), 0, 1000, tf.int32)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            logits = tf.cast(model(x, training=True), tf.float32)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    return step


def _matmul_fn(n: int, dtype: str):
    a = tf.cast(tf.random.normal((n, n)), dtype)
    b = tf.cast(tf.random.normal((n, n)), dtype)
    return tf.function(lambda: tf.matmul(a, b))


def _bn_inception_rows(policy: str, batch: int, iters: int) -> list[tuple]:
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = BNInception(input_shape=(224, 224, 3), classifier_activation=None)
        x = tf.random.normal((batch, 224, 224, 3)) * 50
        dtype = "bfloat16" if policy == "mixed_bfloat16" else "float32"
        n = _MATMUL.value
        sec = _interleaved_seconds(
            {
                "matmul": _matmul_fn(n, dtype),
                "forward": _forward_fn(model, x),
                "forward+backward": _train_fn(model, x),
            },
            iters,
        )
        peak = 2 * n**3 / sec["matmul"] / 1e9
        rows = [(f"matmul {n}^2 {dtype}", "", "", f"{peak:.1f}", "100%")]
        for what, gflop in (("forward", GFLOP_FWD), ("forward+backward", GFLOP_TRAIN)):
            ips = batch / sec[what]
            rows.append(
                (
                    f"BN-Inception 224 {what}",
                    policy,
                    f"{ips:.2f}",
                    f"{ips * gflop:.1f}",
                    f"{100 * ips * gflop / peak:.0f}%",
                )
            )
        return rows
    finally:
        keras.mixed_precision.set_global_policy("float32")


def _time_distributed_model(folded: keras.Model) -> keras.Model:
    """The same TSN head as build_tsn, but the backbone wrapped in TimeDistributed."""
    snippets = keras.Input((None, 224, 224, 3))
    x = keras.layers.TimeDistributed(backbone_of(folded))(snippets)  # [B, K, D]
    x = keras.layers.TimeDistributed(folded.get_layer("dropout"))(x)
    x = keras.layers.TimeDistributed(folded.get_layer("classifier"))(x)  # [B, K, N]
    return keras.Model(snippets, Consensus("avg", dtype="float32")(x))


def _tsn_rows(clips: int, iters: int) -> list[tuple]:
    folded = build_tsn(TSNConfig(num_classes=101, partial_bn=True))
    distributed = _time_distributed_model(folded)
    x = tf.random.normal((clips, 3, 224, 224, 3)) * 50  # [B, K, H, W, C]
    images = clips * 3
    np.testing.assert_allclose(
        folded(x, training=False), distributed(x, training=False), rtol=1e-4, atol=1e-4
    )
    fns = {}
    for name, model in (("reshape [B*K]", folded), ("TimeDistributed", distributed)):
        fns[(name, "forward")] = _forward_fn(model, x)
        fns[(name, "forward+backward")] = _train_fn(model, x)
    sec = _interleaved_seconds(fns, iters)
    rows = []
    for (name, what), seconds in sec.items():
        gflop = GFLOP_FWD if what == "forward" else GFLOP_TRAIN
        ips = images / seconds
        rows.append((f"TSN K=3 {name} {what}", "float32", f"{ips:.2f}", f"{ips * gflop:.1f}", ""))
    return rows


def main(argv):
    del argv
    iters = _ITERS.value
    print(
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores, "
        f"TF {tf.__version__}, Keras {keras.__version__}, "
        f"{len(tf.config.list_physical_devices('CPU'))} CPU device(s), "
        f"{tf.config.threading.get_intra_op_parallelism_threads() or 'default'} intra-op threads, "
        f"batch {_BATCH.value}, median of {iters}"
    )
    rows = []
    rows += _bn_inception_rows("float32", _BATCH.value, iters)
    rows += _bn_inception_rows("mixed_bfloat16", _BATCH.value, iters)
    rows += _tsn_rows(_CLIPS.value, iters)
    header = ("measurement", "policy", "images/s", "GFLOP/s", "of matmul")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths)] + rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    f32 = {r[0]: float(r[2]) for r in rows if r[1] == "float32" and r[2]}
    bf16 = {r[0]: float(r[2]) for r in rows if r[1] == "mixed_bfloat16" and r[2]}
    for key in bf16:
        print(f"bf16 / f32 {key}: {bf16[key] / f32[key]:.2f}x")


if __name__ == "__main__":
    app.run(main)
