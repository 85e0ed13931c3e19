"""The segmental consensus: per-snippet class scores [B, K, N] -> video scores [B, N].

Modes (TSN paper, section 3.1, and common variants):
- "avg": mean over the K snippets (TSN's default).
- "max": max over the snippets, per class.
- "topk": per class, the mean of the k largest snippet scores (k = min(k, K) at run time, so a
  K=3 model with k=2 runs at K=25 as "mean of the best 2 of 25").
- "weighted": sum_k w_k x_k with learned weights w = softmax(theta), theta one scalar per
  training segment (initialised to 0, i.e. the average). At another K (testing uses 25
  snippets), w is read off as a function of the snippet's relative position in the video:
  snippet j of K sits at (j + 0.5) / K, which in training-segment coordinates is
  t = (2j + 1) * K0 / (2K) - 0.5; w(t) linearly interpolates the K0 trained weights (clamped at
  the ends) and the K values are renormalised to sum to 1. At K = K0 this is exactly w.

The layer runs in the dtype its policy says; the TSN builder gives it float32 so logits leave
the model in float32 under mixed precision.
"""

from __future__ import annotations

import keras
from keras import ops

MODES = ("avg", "max", "topk", "weighted")


@keras.saving.register_keras_serializable(package="tsn_keras")
class Consensus(keras.layers.Layer):
    """Segmental consensus over axis 1 of [B, K, N] scores.

    Args:
        mode: One of "avg", "max", "topk", "weighted".
        num_segments: K0, the number of segments the weights are learned for ("weighted" only).
        k: How many top snippets to average ("topk" only).
        **kwargs: Base layer arguments (name, dtype, ...).
    """

    def __init__(
        self, mode: str = "avg", num_segments: int | None = None, k: int | None = None, **kwargs
    ):
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ValueError(f"Consensus mode must be one of {MODES}. Received: mode={mode!r}")
        if mode == "weighted" and (not isinstance(num_segments, int) or num_segments < 1):
            raise ValueError(
                "Consensus mode='weighted' needs num_segments, a positive int (the K the "
                f"weights are learned for). Received: num_segments={num_segments!r}"
            )
        if mode == "topk" and (not isinstance(k, int) or k < 1):
            raise ValueError(f"Consensus mode='topk' needs k, a positive int. Received: k={k!r}")
        self.mode = mode
        self.num_segments = num_segments
        self.k = k

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(
                f"Consensus expects [batch, segments, classes] scores. Received: {input_shape}"
            )
        if self.mode == "weighted":
            self.segment_logits = self.add_weight(
                name="segment_logits",
                shape=(self.num_segments,),
                initializer="zeros",
                trainable=True,
            )

    def segment_weights(self, num_snippets):
        """Weights [K] (sum 1) of `num_snippets` snippets ("weighted" mode)."""
        k0 = self.num_segments
        w0 = ops.softmax(ops.cast(self.segment_logits, self.compute_dtype))
        j = ops.cast(ops.arange(num_snippets), self.compute_dtype)
        k = ops.cast(num_snippets, self.compute_dtype)
        t = (2.0 * j + 1.0) * float(k0) / (2.0 * k) - 0.5  # position in trained segments
        t = ops.clip(t, 0.0, float(k0 - 1))
        lo = ops.floor(t)
        frac = t - lo
        lo = ops.cast(lo, "int32")
        hi = ops.minimum(lo + 1, k0 - 1)
        w = (1.0 - frac) * ops.take(w0, lo) + frac * ops.take(w0, hi)
        return w / ops.sum(w)

    def call(self, inputs):
        # inputs: [B, K, N]
        if self.mode == "avg":
            return ops.mean(inputs, axis=1)
        if self.mode == "max":
            return ops.max(inputs, axis=1)
        if self.mode == "topk":
            top = ops.sort(inputs, axis=1)[:, -self.k :, :]  # [B, min(k, K), N], largest
            return ops.mean(top, axis=1)
        w = self.segment_weights(ops.shape(inputs)[1])  # [K]
        return ops.sum(inputs * w[None, :, None], axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])

    def get_config(self):
        config = super().get_config()
        config.update(mode=self.mode, num_segments=self.num_segments, k=self.k)
        return config
