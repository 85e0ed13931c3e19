"""Batched TV-L1 optical flow written with `keras.ops`: one compiled graph for N frame pairs.

(About 500 lines on purpose: each building block mirrors one OpenCV function that the solver
must match step for step, and they are read together against tvl1flow.cpp. The median filter,
a selection network of its own, is in `tsn_keras.median`.)

    from tsn_keras import tvl1
    flow = tvl1.tvl1_flow(first, second, "parity")   # uint8 [N, H, W] x2 -> float32 [N, H, W, 2]

The duality-based TV-L1 of Zach, Pock and Bischof (2007) as OpenCV's
`cv2.optflow.DualTVL1OpticalFlow` implements it (after Sanchez, Meinhardt-Llopis and Facciolo,
IPOL 2013), step for step, so its flow agrees with OpenCV's (docs/flow_tvl1.md has the facts and
the measured agreement):

* Pyramid: `num_scales` levels, each `scale_step` times the previous one (OpenCV's INTER_LINEAR
  resize, no smoothing; sizes rounded as OpenCV rounds them), stopping before a level with a
  side under 16 px. The coarsest level starts from zero flow; each finer one from the coarser
  flow resized (INTER_LINEAR) and multiplied by 1 / scale_step.
* Per level, `warps` times: I1 and its centred gradient are warped by the current flow (bicubic,
  A = -0.75, zero outside the image, as OpenCV's `remap` does),
  then up to `outer_iterations` x `inner_iterations` primal-dual steps (thresholding with
  lambda * theta, divergence of the dual field, primal update, forward gradient, dual update with
  tau / theta). Each outer iteration starts with a 5x5 median of the flow (`median`).
* Stopping: OpenCV ends a warp when the summed squared change of the flow falls under
  epsilon^2 * pixels (tested after each step, also between outer iterations). Here the outer
  and inner loops are `keras.ops.while_loop`s (data-dependent trip counts compile under XLA and
  `jax.jit`) that run while any pair of the batch has not met that test and the budget
  (`outer_iterations` x `inner_iterations`) is not spent; a pair that has met it is frozen (its
  updates multiplied by 0, per pair) until the batch's warp ends. So each pair gets exactly
  OpenCV's iterations, a batch pays only for its slowest pair, and no pair depends on the
  others in its batch.

The dual variables restart from zero at each level (as in OpenCV). Flow sign convention: that of
`tsn_keras.flow` (content moving right gives dx > 0).

Backends: only `keras.ops` inside the solver. On TensorFlow the graph is compiled with
`tf.function(jit_compile=True)` (XLA, on CPUs too: `compiled_solver`), on JAX with `jax.jit`;
other backends run it eagerly.
One compiled function per (settings, batch size, frame size); callers that batch many pairs
pad batches to a few sizes (`bucket_size`) so that recompiles stay rare.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from tsn_keras.median import median_filter, pad_edge

# Parameter names follow OpenCV's DualTVL1OpticalFlow.


@dataclass(frozen=True)
class TVL1Settings:
    """TV-L1 parameters (OpenCV's names and defaults).

    Attributes:
      tau: time step of the dual update.
      lambda_: weight of the data term (smaller = smoother flow).
      theta: coupling between the flow and its thresholded copy.
      num_scales: pyramid levels (fewer when a level would have a side under 16 px).
      scale_step: size ratio of two consecutive levels, in (0, 1).
      warps: warps per level.
      outer_iterations: outer iterations per warp (each starts with the median filter).
      inner_iterations: primal-dual steps per outer iteration.
      epsilon: stop a pair's warp when its mean squared flow change < epsilon^2; 0 = never.
      median: median filter size (odd; 1 = none). OpenCV's default is 5.
      pyramid: "resize": each level is the previous one resized by `scale_step` (INTER_LINEAR,
        no smoothing; OpenCV's CPU DualTVL1); "pyrdown": Gaussian 5x5 blur, every other row
        and column kept (OpenCV's pyrDown; 2.4's GPU TV-L1), `scale_step` must be 0.5.
      warp: "cpu": bicubic A = -0.75, taps outside the image count 0 (OpenCV's remap, the CPU
        DualTVL1); "gpu24": bicubic A = -0.5, taps outside take the nearest edge pixel (2.4's
        GPU warpBackward with its clamped texture).
    """

    tau: float = 0.25
    lambda_: float = 0.15
    theta: float = 0.3
    num_scales: int = 5
    scale_step: float = 0.8
    warps: int = 5
    outer_iterations: int = 10
    inner_iterations: int = 30
    epsilon: float = 0.01
    median: int = 5
    pyramid: str = "resize"
    warp: str = "cpu"

    def __post_init__(self):
        for name in ("tau", "lambda_", "theta"):
            if not getattr(self, name) > 0:
                raise ValueError(f"TV-L1 {name} must be > 0. Received: {getattr(self, name)}")
        for name in ("num_scales", "warps", "outer_iterations", "inner_iterations"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"TV-L1 {name} must be an integer >= 1. Received: {value!r}")
        if not 0 < self.scale_step < 1:
            raise ValueError(f"TV-L1 scale_step must be in (0, 1). Received: {self.scale_step}")
        if self.epsilon < 0:
            raise ValueError(f"TV-L1 epsilon must be >= 0. Received: {self.epsilon}")
        if self.median not in (1, 3, 5):
            raise ValueError(f"TV-L1 median must be 1 (off), 3 or 5. Received: {self.median}")
        if self.pyramid not in ("resize", "pyrdown"):
            raise ValueError(f"TV-L1 pyramid must be resize or pyrdown. Received: {self.pyramid!r}")
        if self.pyramid == "pyrdown" and self.scale_step != 0.5:
            raise ValueError(f"TV-L1 pyramid pyrdown halves: scale_step must be 0.5. Received: "
                             f"{self.scale_step}")  # fmt: skip
        if self.warp not in ("cpu", "gpu24"):
            raise ValueError(f"TV-L1 warp must be cpu or gpu24. Received: {self.warp!r}")


# `parity`: OpenCV's defaults, its whole budget of 10 x 30 steps per warp included. The loops
# stop when every pair of the batch has met epsilon, so the budget costs only what the hardest
# pair of a call uses (on real 340x256 pairs ~20 steps per warp on average, up to the whole
# 300 on large motion: bench/flow.py prints the counts and the share of warps at the budget).
# `fast`: of the candidates of bench/flow.py --sweep at about 12x OpenCV or more, the one
# nearest the true motion (far nearer than OpenCV on large motion), 0.67 px from OpenCV's flow
# (`s7 w2 i30` is 0.59 px from it at 11-14x but loses large motion: docs/flow_tvl1.md):
# 8 levels (the 3 coarse ones past OpenCV's 5 are small and carry large motion, which 5 levels
# of 2 x 15 steps lost), 2 warps of 20 steps, no stopping test (almost every warp used its
# budget anyway).
PRESETS = {
    "parity": TVL1Settings(),
    "fast": TVL1Settings(
        num_scales=8, warps=2, outer_iterations=1, inner_iterations=20, epsilon=0.0
    ),
    # `tsn`: OpenCV 2.4's gpu::OpticalFlowDual_TVL1_GPU with its defaults, as dense_flow (the
    # TSN paper's extractor) called it: pyrDown pyramid, no median, up to 300 steps per warp in
    # one loop, bicubic A = -0.5 with clamped borders (docs/flow_tvl1.md has the differences)
    "tsn": TVL1Settings(
        scale_step=0.5,
        outer_iterations=1,
        inner_iterations=300,
        median=1,
        pyramid="pyrdown",
        warp="gpu24",
    ),  # fmt: skip
}


def settings_for(preset: str, **overrides) -> TVL1Settings:
    """A named preset with some fields replaced (None values are ignored)."""
    if preset not in PRESETS:
        raise ValueError(f"--flow_preset must be one of {list(PRESETS)}. Received: {preset!r}")
    return dataclasses.replace(
        PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}
    )


def pyramid_sizes(height: int, width: int, settings: TVL1Settings) -> list[tuple[int, int]]:
    """(height, width) of each level, finest first, as OpenCV's resize(fx=fy=scale_step) rounds."""
    sizes = [(height, width)]
    for _ in range(1, settings.num_scales):
        h, w = sizes[-1]
        if settings.pyramid == "pyrdown":  # pyrDown's default size
            h, w = (h + 1) // 2, (w + 1) // 2
        else:  # cv::resize with fx: dsize = saturate_cast<int>(w * fx) (round half even)
            h, w = round(h * settings.scale_step), round(w * settings.scale_step)
        if h < 16 or w < 16:
            break
        sizes.append((h, w))
    return sizes


def linear_resize_matrix(src: int, dst: int, scale: float) -> np.ndarray:
    """[dst, src] matrix of OpenCV's INTER_LINEAR resize along one axis.

    `scale` is source pixels per destination pixel: 1 / fx when OpenCV is given fx (the
    pyramid), src / dst when it is given the size (the flow's upsampling). Half-pixel centres;
    positions outside the image use the edge pixel.
    """
    m = np.zeros((dst, src), np.float32)
    for d in range(dst):
        f = np.float32((d + 0.5) * scale - 0.5)
        s = math.floor(f)
        a = np.float32(f - s)
        if s < 0:
            s, a = 0, np.float32(0)
        if s >= src - 1:
            s, a = src - 1, np.float32(0)
        m[d, s] += np.float32(1) - a
        if a:
            m[d, s + 1] += a
    return m


def pyrdown_matrix(src: int, dst: int) -> np.ndarray:
    """[dst, src] matrix of OpenCV's pyrDown along one axis: the 1 4 6 4 1 / 16 kernel at every
    other pixel, mirrored at the edges without repeating them (BORDER_REFLECT_101)."""
    m = np.zeros((dst, src), np.float32)
    for d in range(dst):
        for k, g in zip(range(-2, 3), (1, 4, 6, 4, 1), strict=True):
            s = 2 * d + k
            s = -s if s < 0 else s
            s = 2 * (src - 1) - s if s > src - 1 else s
            m[d, min(max(s, 0), src - 1)] += g / 16
    return m


# ---------------------------------------------------------------------------------------------
# The building blocks (keras.ops on [N, H, W] tensors).


def _ops():
    from keras import ops  # imported late: the converter's workers may not need Keras

    return ops


def resize_linear(x, rows: np.ndarray, cols: np.ndarray):
    """[N, H, W] -> [N, h, w] by `linear_resize_matrix` matrices rows [h, H] and cols [w, W]."""
    ops = _ops()
    x = ops.matmul(ops.convert_to_tensor(cols)[None], ops.transpose(x, (0, 2, 1)))  # [N, w, H]
    return ops.matmul(ops.convert_to_tensor(rows)[None], ops.transpose(x, (0, 2, 1)))  # [N, h, w]


def centered_gradient(x):
    """OpenCV's centredGradient: 0.5 * (x[i+1] - x[i-1]) with the edge pixel repeated."""
    p = pad_edge(x, 1)  # [N, H+2, W+2]
    dx = 0.5 * (p[:, 1:-1, 2:] - p[:, 1:-1, :-2])
    dy = 0.5 * (p[:, 2:, 1:-1] - p[:, :-2, 1:-1])
    return dx, dy


def forward_gradient(u):
    """u[i+1] - u[i], zero on the last column (x) / row (y)."""
    ops = _ops()
    zx = ops.zeros_like(u[:, :, :1])
    zy = ops.zeros_like(u[:, :1, :])
    ux = ops.concatenate([u[:, :, 1:] - u[:, :, :-1], zx], axis=2)
    uy = ops.concatenate([u[:, 1:, :] - u[:, :-1, :], zy], axis=1)
    return ux, uy


def divergence(px, py):
    """Backward differences, zero before the first column / row (-adjoint of forward_gradient)."""
    ops = _ops()
    dx = px - ops.concatenate([ops.zeros_like(px[:, :, :1]), px[:, :, :-1]], axis=2)
    dy = py - ops.concatenate([ops.zeros_like(py[:, :1, :]), py[:, :-1, :]], axis=1)
    return dx + dy


def _cubic_weights(t, a: float = -0.75):
    """Bicubic weights (OpenCV's remap: A = -0.75) at fractional offset t: 4 tensors like t."""
    w0 = ((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a
    w1 = ((a + 2) * t - (a + 3)) * t * t + 1
    w2 = ((a + 2) * (1 - t) - (a + 3)) * (1 - t) * (1 - t) + 1
    return w0, w1, w2, 1 - w0 - w1 - w2


def warp_bicubic(images, u1, u2, style: str = "cpu"):
    """Samples each [N, H, W] image of `images` at (x + u1, y + u2) like OpenCV's remap.

    INTER_CUBIC at the exact float positions (OpenCV 5's remap; 4.x rounded them to 1/32 px),
    taps outside the image count as 0 (BORDER_CONSTANT). `style` "gpu24": OpenCV 2.4's GPU
    TV-L1 instead, A = -0.5 and taps outside take the nearest edge pixel. Returns a list like
    `images`.
    """
    ops = _ops()
    n, h, w = u1.shape
    xs = ops.arange(w, dtype="float32")[None, None, :] + u1
    ys = ops.arange(h, dtype="float32")[:, None][None] + u2
    # far outside, every tap is outside either way; clipping keeps the int32 indices small
    xs = ops.clip(xs, -4.0, w + 3.0)
    ys = ops.clip(ys, -4.0, h + 3.0)
    x0 = ops.floor(xs)
    y0 = ops.floor(ys)
    a = -0.5 if style == "gpu24" else -0.75
    wx = _cubic_weights(xs - x0, a)
    wy = _cubic_weights(ys - y0, a)
    x0 = ops.cast(x0, "int32")
    y0 = ops.cast(y0, "int32")
    flat = ops.reshape(ops.stack(images, axis=-1), (n * h * w, len(images)))  # [N*H*W, C]
    # the 4x4 taps of every pixel in one gather: offsets -1..2 along a leading tap axis
    offsets = ops.convert_to_tensor(np.arange(-1, 3, dtype=np.int32))
    yy = y0[None] + offsets[:, None, None, None]  # [4, N, H, W]
    xx = x0[None] + offsets[:, None, None, None]  # [4, N, H, W]
    y_ok, x_ok = (yy >= 0) & (yy < h), (xx >= 0) & (xx < w)
    base = ops.arange(n, dtype="int32")[:, None, None] * (h * w)  # [N, 1, 1]
    rows = base[None] + ops.clip(yy, 0, h - 1) * w  # [4, N, H, W]
    idx = rows[:, None] + ops.clip(xx, 0, w - 1)[None]  # [4 (y), 4 (x), N, H, W]
    weight = ops.stack(wy)[:, None] * ops.stack(wx)[None]  # [4, 4, N, H, W]
    if style != "gpu24":  # taps outside count 0 (gpu24: the clipped index, the edge pixel)
        weight = weight * ops.cast(y_ok[:, None] & x_ok[None], "float32")
    taps = ops.reshape(ops.take(flat, ops.reshape(idx, (-1,)), axis=0), (4, 4, n, h, w, -1))
    out = ops.sum(taps * weight[..., None], axis=(0, 1))  # [N, H, W, C]
    return [out[..., c] for c in range(len(images))]


# ---------------------------------------------------------------------------------------------
# The solver.


def _one_scale(i0, i1, u1, u2, settings: TVL1Settings, early_exit: bool):
    """`warps` warps of primal-dual iterations at one level.

    Returns (u1, u2, steps [N], capped [N]): the steps each pair took, and how many of its
    warps ended at the budget with the pair still above epsilon (every warp when epsilon is 0).
    """
    ops = _ops()
    n, h, w = i0.shape
    l_t = settings.lambda_ * settings.theta
    taut = settings.tau / settings.theta
    theta = settings.theta
    stop = settings.epsilon**2 * h * w  # OpenCV: epsilon^2 * area on the summed change
    use_stop = settings.epsilon > 0
    i1x, i1y = centered_gradient(i1)
    zeros = ops.zeros_like(i0)
    steps = ops.zeros((n,), "float32")
    exit_early = use_stop and early_exit

    def inner_step(state, i1wx, i1wy, grad, rho_c):
        u1, u2, p11, p12, p21, p22, active, steps = state
        # A frozen pair (active 0) gets 0 x every update: it keeps u and p exactly, and x 1
        # changes no bit. (Per-pair factors, not a `where` on the results: XLA then fuses the
        # step once instead of recomputing it for each select.)
        a = ops.cast(active, "float32")[:, None, None]
        rho = rho_c + i1wx * u1 + i1wy * u2
        lo = rho < -l_t * grad
        hi = rho > l_t * grad
        fi = -rho / ops.where(grad > 1.1920929e-07, grad, 1.0)
        fi = ops.where(grad > 1.1920929e-07, fi, 0.0)
        d = ops.where(lo, l_t, ops.where(hi, -l_t, fi)) * a
        v1 = u1 + d * i1wx
        v2 = u2 + d * i1wy
        # primal update (estimateU)
        n1 = v1 + (theta * a) * divergence(p11, p12)
        n2 = v2 + (theta * a) * divergence(p21, p22)
        # dual update (estimateDualVariables) on the new flow's forward gradient
        t = taut * a
        u1x, u1y = forward_gradient(n1)
        u2x, u2y = forward_gradient(n2)
        ng1 = 1.0 + t * ops.sqrt(u1x * u1x + u1y * u1y)
        ng2 = 1.0 + t * ops.sqrt(u2x * u2x + u2y * u2y)
        q11 = (p11 + t * u1x) / ng1
        q12 = (p12 + t * u1y) / ng1
        q21 = (p21 + t * u2x) / ng2
        q22 = (p22 + t * u2y) / ng2
        steps = steps + ops.cast(active, "float32")
        if use_stop:
            error = ops.sum((n1 - u1) ** 2 + (n2 - u2) ** 2, axis=(1, 2))  # [N]
            active = active & (error > stop)
        return (n1, n2, q11, q12, q21, q22, active, steps)

    inner_n, outer_n = settings.inner_iterations, settings.outer_iterations

    def warp(_, state):
        u1, u2, p11, p12, p21, p22, steps, capped = state
        i1w, i1wx, i1wy = warp_bicubic([i1, i1x, i1y], u1, u2, settings.warp)
        grad = i1wx * i1wx + i1wy * i1wy
        rho_c = i1w - i1wx * u1 - i1wy * u2 - i0

        # Both loops run while any pair of the batch is active (OpenCV's `error > epsilon`
        # test, per pair) and their count is under the budget: the batch pays for its slowest
        # pair, not for the budget. The warp's images are captured, not carried.
        def inner_cond(*state):
            return (ops.any(state[6]) & (state[8] < inner_n)) if exit_early else state[8] < inner_n

        def inner(*state):
            out = inner_step(state[:8], i1wx, i1wy, grad, rho_c)
            return (*out, state[8] + 1)

        def outer_cond(*state):
            return (ops.any(state[6]) & (state[8] < outer_n)) if exit_early else state[8] < outer_n

        def outer(*state):
            u1, u2 = state[0], state[1]
            if settings.median > 1:
                a = state[6][:, None, None]
                u1 = ops.where(a, median_filter(u1, settings.median), u1)
                u2 = ops.where(a, median_filter(u2, settings.median), u2)
            zero = ops.zeros((), "int32")
            out = ops.while_loop(inner_cond, inner, (u1, u2, *state[2:8], zero))
            return (*out[:8], state[8] + 1)

        active = ops.ones((n,), "bool")
        zero = ops.zeros((), "int32")
        loop_state = (u1, u2, p11, p12, p21, p22, active, steps, zero)
        out = ops.while_loop(outer_cond, outer, loop_state)
        return (*out[:6], out[7], capped + ops.cast(out[6], "float32"))

    state = (u1, u2, zeros, zeros, zeros, zeros, steps, ops.zeros((n,), "float32"))
    state = ops.fori_loop(0, settings.warps, warp, state)
    return state[0], state[1], state[6], state[7]


def solve(first, second, settings: TVL1Settings, early_exit: bool = True):
    """The whole solver on float32 tensors [N, H, W] (0-255).

    Returns (flow [N, H, W, 2], steps [N, L], capped [N, L]): per pair and level (finest
    first), the primal-dual steps it took and the number of its warps that ended at the
    budget (`outer_iterations` x `inner_iterations`) without meeting epsilon, the figures that
    show how much of the budget epsilon left unused and how often the budget cut a warp short.
    `early_exit` False runs every warp to the budget (frozen pairs still pay each step; the
    flow is the same bits).
    """
    ops = _ops()
    n, h, w = first.shape
    sizes = pyramid_sizes(h, w, settings)
    i0s, i1s = [first], [second]
    for (ph, pw), (sh, sw) in zip(sizes[:-1], sizes[1:], strict=True):
        if settings.pyramid == "pyrdown":
            rows, cols = pyrdown_matrix(ph, sh), pyrdown_matrix(pw, sw)
        else:
            rows = linear_resize_matrix(ph, sh, 1.0 / settings.scale_step)
            cols = linear_resize_matrix(pw, sw, 1.0 / settings.scale_step)
        i0s.append(resize_linear(i0s[-1], rows, cols))
        i1s.append(resize_linear(i1s[-1], rows, cols))
    u1 = u2 = ops.zeros((n, *sizes[-1]), "float32")
    steps, capped = [], []
    for s in range(len(sizes) - 1, -1, -1):
        u1, u2, taken, cut = _one_scale(i0s[s], i1s[s], u1, u2, settings, early_exit)
        steps.append(taken)
        capped.append(cut)
        if s == 0:
            break
        (sh, sw), (dh, dw) = sizes[s], sizes[s - 1]
        rows = linear_resize_matrix(sh, dh, sh / dh)
        cols = linear_resize_matrix(sw, dw, sw / dw)
        u1 = resize_linear(u1, rows, cols) * (1.0 / settings.scale_step)
        u2 = resize_linear(u2, rows, cols) * (1.0 / settings.scale_step)
    return (
        ops.stack([u1, u2], axis=-1),
        ops.stack(steps[::-1], axis=1),
        ops.stack(capped[::-1], axis=1),
    )


_COMPILED: dict = {}


def preferred_batch() -> int:
    """Pairs per solver call for the current device: 32 on an accelerator (fills it), 1 on a
    CPU. There XLA spreads one pair over the cores, and a call runs until its slowest pair has
    met epsilon: alone, each pair pays only its own steps (`bench/flow.py --presets parity
    --batches 1,8 --pairs 5 --repeats 1` on 2 cores: `parity` 2.25 pairs/s at batch 1, 0.72 at
    batch 8)."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return 32 if tf.config.list_logical_devices("GPU") else 1
    if backend == "jax":
        import jax

        return 32 if jax.default_backend() != "cpu" else 1
    return 1


def _without_arithmetic_optimizer(graph):
    """Calls `graph` with Grappler's arithmetic optimizer off, restoring the setting after.

    Its AddOpsRewrite puts temporary variables inside the nested while loops that clash between
    parallel iterations ("AlreadyExistsError ... tmp_var", seen with TF 2.21 on the plain
    graph). Grappler runs when a traced graph is first called, so other graphs of the process
    (a model in predict) keep the optimizer.
    """
    import tensorflow as tf

    def call(*args):
        before = tf.config.optimizer.get_experimental_options()
        tf.config.optimizer.set_experimental_options({"arithmetic_optimization": False})
        try:
            return graph(*args)
        finally:
            tf.config.optimizer.set_experimental_options(
                {"arithmetic_optimization": before.get("arithmetic_optimization", True)}
            )

    return call


def compiled_solver(settings: TVL1Settings, jit: bool = True, early_exit: bool = True):
    """`solve` compiled for the current Keras backend (one function per settings; it retraces
    per input shape). TensorFlow: tf.function(jit_compile=jit); JAX: jax.jit; other backends:
    eager.

    XLA (`jit`, the default on every device) fuses each primal-dual step and the median network
    into a few passes: on a 2-core CPU about 3x faster than the plain TensorFlow graph
    (`jit=False`, kept for comparison; docs/flow_tvl1.md). `early_exit` False: fixed trip
    counts, for comparison (bench/flow.py) and for devices where a loop test that reads the
    batch's state costs more than the steps it saves.
    """
    import keras

    backend = keras.backend.backend()
    key = (settings, backend, jit, early_exit)
    if key in _COMPILED:
        return _COMPILED[key]

    def fn(first, second):
        return solve(first, second, settings, early_exit)

    if backend == "tensorflow":
        import tensorflow as tf

        # autograph off: the loops are keras.ops.fori_loop already, nothing to convert
        graph = tf.function(fn, jit_compile=jit, reduce_retracing=False, autograph=False)
        compiled = graph if jit else _without_arithmetic_optimizer(graph)
    elif backend == "jax":
        import jax

        compiled = jax.jit(fn)
    else:
        compiled = fn
    _COMPILED[key] = compiled
    return compiled


def check_pairs(first, second) -> tuple[np.ndarray, np.ndarray]:
    """Validates a batch of grayscale pairs; returns float32 arrays [N, H, W] (0-255)."""
    first, second = np.asarray(first), np.asarray(second)
    if first.shape != second.shape:
        raise ValueError(
            f"TV-L1 needs the two frames of each pair at one size. Received: {first.shape} and "
            f"{second.shape}"
        )
    if first.ndim == 4 and first.shape[-1] in (3, 4):
        raise ValueError(
            f"TV-L1 takes grayscale frames [N, H, W]; convert colour frames first "
            f"(tsn_keras.flow.to_gray). Received: {first.shape}"
        )
    if first.ndim != 3:
        raise ValueError(
            f"TV-L1 takes a batch of grayscale frames [N, H, W]. Received: {first.shape}"
        )
    if first.shape[0] == 0:
        raise ValueError(f"TV-L1 got an empty batch (no frame pairs). Received: {first.shape}")
    if first.shape[1] < 2 or first.shape[2] < 2:
        raise ValueError(f"TV-L1 needs frames of at least 2x2 pixels. Received: {first.shape}")
    for name, x in (("first", first), ("second", second)):
        if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
            raise ValueError(f"TV-L1 {name} frames must be numbers. Received dtype {x.dtype}")
    # OpenCV: 8-bit frames as they are, float frames (0-1) times 255
    scale = [1.0 if np.issubdtype(x.dtype, np.integer) else 255.0 for x in (first, second)]
    return (first.astype(np.float32) * scale[0], second.astype(np.float32) * scale[1])


def bucket_size(n: int, sizes: tuple[int, ...] = (1, 4, 8, 16, 32)) -> int:
    """The batch size to pad n pairs to: the smallest of `sizes` >= n, else a multiple of the
    largest (few distinct shapes, so few compiles)."""
    for s in sizes:
        if n <= s:
            return s
    return sizes[-1] * math.ceil(n / sizes[-1])


def tvl1_flow(
    first,
    second,
    settings: TVL1Settings | str = "parity",
    batch_size: int = 32,
    jit: bool = True,
    pad_to_batch: bool = False,
) -> np.ndarray:
    """TV-L1 flow of each pair first[i] -> second[i].

    Args:
      first: [N, H, W] grayscale frames (uint8 0-255, or float 0-1 like OpenCV).
      second: the same shape.
      settings: a TVL1Settings or a preset name ("parity", "fast").
      batch_size: pairs per compiled call; the last call is padded to `bucket_size` (so one
        frame size compiles at most a few times).
      jit: XLA on TensorFlow (False: a plain tf.function graph).
      pad_to_batch: pad the last call to `batch_size` itself: every call then runs one
        program, and a pair's flow does not depend on the pairs beside it or on its place
        (what the converter's shared calls rely on: convert.flow_batches).

    Returns:
      float32 [N, H, W, 2] (dx, dy), OpenCV's sign convention.
    """
    if isinstance(settings, str):
        settings = settings_for(settings)
    first, second = check_pairs(first, second)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1. Received: {batch_size}")
    fn = compiled_solver(settings, jit)
    out = []
    for start in range(0, len(first), batch_size):
        a, b = first[start : start + batch_size], second[start : start + batch_size]
        k = len(a)
        pad = (batch_size if pad_to_batch else min(bucket_size(k), batch_size)) - k
        if pad > 0:  # repeat the last pair: pairs are independent, padding changes nothing
            a = np.concatenate([a, np.repeat(a[-1:], pad, axis=0)])
            b = np.concatenate([b, np.repeat(b[-1:], pad, axis=0)])
        flow = fn(a, b)[0]
        out.append(np.asarray(flow)[:k])
    return np.concatenate(out)
