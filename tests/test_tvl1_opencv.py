"""tvl1_flow against OpenCV's DualTVL1 configured exactly as the solver: the same pyramid,
warps, inner / outer iterations, epsilon and median, on textured frames with motion of up to
7 px. Equal settings must give equal flow (EPE < 1e-3 px), with the stopping test off and on.

OpenCV 4.x's remap rounds sampling positions to 1/32 px (OpenCV 5 samples at the exact
positions, as `tvl1.warp_bicubic` does), which moves its TV-L1 flow by more than that: the flow
comparisons run on OpenCV >= 5 and are skipped on the 4.x that setup.py also allows.
"""

import cv2
import numpy as np
import pytest

from tsn_keras import tvl1

OPENCV_5 = int(cv2.__version__.split(".")[0]) >= 5
needs_opencv_5 = pytest.mark.skipif(
    not OPENCV_5, reason=f"OpenCV {cv2.__version__}'s remap rounds positions to 1/32 px"
)


def texture(height: int, width: int, seed: int) -> np.ndarray:
    """Band-limited noise of several scales, 0-255 float [H, W] (like a real frame's detail)."""
    rng = np.random.default_rng(seed)
    image = sum(
        cv2.resize(rng.uniform(0, 255, (height // k, width // k)).astype(np.float32),
                   (width, height)) / k
        for k in (1, 2, 4)
    )  # fmt: skip
    image = cv2.GaussianBlur(image, (0, 0), 1.0)
    return (image - image.min()) / (image.max() - image.min()) * 255


def affine_maps(height: int, width: int) -> list[np.ndarray]:
    """The 2x3 affine maps of `moved_pairs`."""
    return [
        np.float32([[1, 0, 5.5], [0, 1, -3.25]]),
        cv2.getRotationMatrix2D((width / 2, height / 2), 4.0, 1.0),
        cv2.getRotationMatrix2D((width / 2, height / 2), 0.0, 1.06),
    ]


def moved_pairs(height: int = 56, width: int = 72) -> tuple[np.ndarray, np.ndarray]:
    """Three uint8 pairs [3, H, W]: a shift of (5.5, -3.25) px, a 4 degree rotation (up to 3 px)
    and a 1.06 zoom (up to 2.7 px)."""
    firsts, seconds = [], []
    for seed, m in enumerate(affine_maps(height, width)):
        image = texture(height, width, seed)
        moved = cv2.warpAffine(image, np.float32(m), (width, height), borderMode=cv2.BORDER_REFLECT)
        firsts.append(np.round(image))
        seconds.append(np.round(moved))
    return np.asarray(firsts, np.uint8), np.asarray(seconds, np.uint8)


def true_flows(height: int = 56, width: int = 72) -> np.ndarray:
    """[3, H, W, 2]: where each first-frame pixel of `moved_pairs` went."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    out = []
    for m in affine_maps(height, width):
        m = np.float32(m)
        dx = m[0, 0] * xs + m[0, 1] * ys + m[0, 2] - xs
        dy = m[1, 0] * xs + m[1, 1] * ys + m[1, 2] - ys
        out.append(np.stack([dx, dy], -1))
    return np.asarray(out)


def opencv_as(settings: tvl1.TVL1Settings):
    """OpenCV's DualTVL1 set to `settings`, field by field."""
    tv = cv2.optflow.DualTVL1OpticalFlow_create()
    tv.setTau(settings.tau)
    tv.setLambda(settings.lambda_)
    tv.setTheta(settings.theta)
    tv.setScalesNumber(settings.num_scales)
    tv.setScaleStep(settings.scale_step)
    tv.setWarpingsNumber(settings.warps)
    tv.setOuterIterations(settings.outer_iterations)
    tv.setInnerIterations(settings.inner_iterations)
    tv.setEpsilon(settings.epsilon)
    tv.setMedianFiltering(settings.median)
    return tv


def epe(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(((a - b) ** 2).sum(-1)).mean())


# `parity` shrunk to what a test can afford: 3 levels, 2 warps of 2 x 12 steps
SHRUNK = tvl1.settings_for("parity", num_scales=3, warps=2, outer_iterations=2, inner_iterations=12)


@needs_opencv_5
@pytest.mark.parametrize(
    "settings",
    [
        pytest.param(tvl1.dataclasses.replace(SHRUNK, epsilon=0.0), id="epsilon off"),
        # 0.05: most warps stop before the budget, at different steps for each pair
        pytest.param(tvl1.dataclasses.replace(SHRUNK, epsilon=0.05), id="epsilon on"),
    ],
)
def test_equal_settings_give_opencvs_flow(settings):
    first, second = moved_pairs()
    ours, steps, capped = tvl1.compiled_solver(settings)(*tvl1.check_pairs(first, second))
    ours, steps, capped = np.asarray(ours), np.asarray(steps), np.asarray(capped)
    tv = opencv_as(settings)
    for i in range(len(first)):
        ref = tv.calc(first[i], second[i], None)
        assert np.abs(ref).max() > 2.5, i  # the motion is there
        assert epe(ours[i], ref) < 1e-3, (i, epe(ours[i], ref))
    per_warp = settings.outer_iterations * settings.inner_iterations
    budget = settings.warps * per_warp
    if settings.epsilon:  # the stopping test ended warps early, and not all alike
        assert (steps < budget).any() and len(np.unique(steps)) > 1, steps
        # a warp cut by the budget took all its steps; the others stopped sooner
        assert (capped <= settings.warps).all() and (steps >= capped * per_warp).all()
        assert ((steps < budget) == (capped < settings.warps)).all(), (steps, capped)
    else:  # no stopping test: every warp runs to the budget
        assert (steps == budget).all() and (capped == settings.warps).all(), (steps, capped)


def test_bicubic_warp_matches_opencv_remap_at_its_precision():
    """OpenCV 5 samples at the exact positions; 4.x at positions rounded to 1/32 px, so there
    the displacements are drawn on that grid (both then sample the same points)."""
    image = texture(30, 41, seed=5).astype(np.float32)
    rng = np.random.default_rng(6)
    u1 = rng.uniform(-6, 6, image.shape).astype(np.float32)  # reaches outside the image
    u2 = rng.uniform(-6, 6, image.shape).astype(np.float32)
    if not OPENCV_5:
        u1, u2 = np.round(u1 * 32) / 32, np.round(u2 * 32) / 32
    (got,) = tvl1.warp_bicubic([image[None]], u1[None], u2[None])
    ys, xs = np.mgrid[0:30, 0:41].astype(np.float32)
    want = cv2.remap(image, xs + u1, ys + u2, cv2.INTER_CUBIC)  # BORDER_CONSTANT 0
    np.testing.assert_allclose(np.asarray(got)[0], want, atol=1e-3)


# ---------------------------------------------------------------------------------------------
# `tsn`: OpenCV 2.4's GPU TV-L1 (no 2.4 to run here: its pieces against their definitions, the
# whole against OpenCV's CPU TV-L1 set as near as it allows)


@pytest.mark.parametrize("height,width", [(31, 40), (16, 17)])
def test_pyrdown_matrix_is_opencvs_pyrdown(height, width):
    x = texture(height, width, seed=3).astype(np.float32)
    rows = tvl1.pyrdown_matrix(height, (height + 1) // 2)
    cols = tvl1.pyrdown_matrix(width, (width + 1) // 2)
    np.testing.assert_allclose(rows @ x @ cols.T, cv2.pyrDown(x), atol=1e-4)


def _gpu24_sample(image: np.ndarray, x: float, y: float) -> float:
    """2.4's warpBackward at one point, as its kernel reads: taps from ceil(p - 2) to
    floor(p + 2), Keys' cubic with A = -0.5, indices clamped (the texture), normalised."""

    def coeff(t):
        t = abs(t)
        if t <= 1:
            return t * t * (1.5 * t - 2.5) + 1
        return t * (t * (-0.5 * t + 2.5) - 4) + 2 if t < 2 else 0.0

    h, w = image.shape
    total = weights = 0.0
    for cy in range(int(np.ceil(y - 2)), int(np.floor(y + 2)) + 1):
        for cx in range(int(np.ceil(x - 2)), int(np.floor(x + 2)) + 1):
            wt = coeff(x - cx) * coeff(y - cy)
            total += wt * image[min(max(cy, 0), h - 1), min(max(cx, 0), w - 1)]
            weights += wt
    return total / weights


def test_gpu24_warp_is_the_2_4_kernel():
    image = texture(12, 15, seed=4).astype(np.float32)
    rng = np.random.default_rng(8)
    u1 = rng.uniform(-4, 4, image.shape).astype(np.float32)  # reaches outside the image
    u2 = rng.uniform(-4, 4, image.shape).astype(np.float32)
    u1[0, 0], u2[0, 0] = 2.0, -1.0  # a whole-pixel position: 5 taps, the outer ones 0
    (got,) = tvl1.warp_bicubic([image[None]], u1[None], u2[None], "gpu24")
    want = [
        [_gpu24_sample(image, x + u1[y, x], y + u2[y, x]) for x in range(15)] for y in range(12)
    ]
    np.testing.assert_allclose(np.asarray(got)[0], want, atol=1e-3)


def test_tsn_preset_against_opencv_cpu_set_near():
    """`tsn` against OpenCV's CPU TV-L1 at 2.4's settings (scale step 0.5, no median, 1 x 300
    steps per warp): with the CPU pyramid and warp it is OpenCV's flow (EPE < 1e-3); 2.4's
    pyrDown pyramid and clamped warp give another answer, mostly at the borders where content
    leaves the frame, and away from them as close to the true motion (docs/flow_tvl1.md has the
    figures on real pairs)."""
    first, second = moved_pairs()
    truth = true_flows()
    tsn = tvl1.PRESETS["tsn"]
    near = tvl1.dataclasses.replace(tsn, pyramid="resize", warp="cpu")
    tv = opencv_as(near)
    refs = [tv.calc(first[i], second[i], None) for i in range(len(first))]
    got_near = tvl1.tvl1_flow(first, second, near, batch_size=4)
    got_tsn = tvl1.tvl1_flow(first, second, tsn, batch_size=4)
    inner = (slice(6, -6), slice(6, -6))
    for i, ref in enumerate(refs):
        if OPENCV_5:
            assert epe(got_near[i], ref) < 1e-3, i
    # (not the 6.4 px shift: at 56x72 there are 2 levels, too few for it, and where each
    # solver stops is arbitrary)
    for i in (1, 2):
        assert epe(got_tsn[i], refs[i]) > 0.05, i  # another algorithm
        assert epe(got_tsn[i][inner], refs[i][inner]) < epe(got_tsn[i], refs[i]), i
        ours, theirs = epe(got_tsn[i][inner], truth[i][inner]), epe(refs[i][inner], truth[i][inner])
        assert ours < theirs + 0.01 and ours < 0.1, (i, ours, theirs)
