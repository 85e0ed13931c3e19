"""Flow: sign convention per algorithm, encoding round trip, warped flow cancels a camera pan."""

import cv2
import numpy as np
import pytest

from tsn_keras import flow


def _texture(height, width, seed=0, blur=3):
    """Smooth random texture, uint8 [H, W] (smooth enough for every flow method)."""
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0, 255, (height, width)).astype(np.float32)
    tex = cv2.GaussianBlur(noise, (0, 0), blur)
    tex = (tex - tex.min()) / (tex.max() - tex.min()) * 255
    return tex.astype(np.uint8)


def _shift_right(image, dx):
    """Content moved right by dx px (edge replicated)."""
    m = np.float32([[1, 0, dx], [0, 1, 0]])
    return cv2.warpAffine(
        image, m, image.shape[::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )


@pytest.mark.parametrize(
    "algorithm,size",
    [("dis", (48, 64)), ("farneback", (48, 64)), ("tvl1", (24, 32))],  # TV-L1 on tiny frames
)
def test_flow_sign_pattern_shifted_right(algorithm, size):
    first = _texture(*size, blur=2)
    second = _shift_right(first, 3)
    f = flow.OpticalFlow(algorithm)(first, second)
    assert f.shape == (*size, 2) and f.dtype == np.float32
    inner = f[6:-6, 6:-6]  # away from the borders
    assert np.median(inner[..., 0]) == pytest.approx(3.0, abs=0.5)
    assert np.median(inner[..., 1]) == pytest.approx(0.0, abs=0.5)


def test_unknown_algorithm_names_the_flag():
    with pytest.raises(ValueError, match="--flow"):
        flow.OpticalFlow("lucas")


def test_encode_decode_within_half_a_step():
    bound = 20.0
    rng = np.random.default_rng(0)
    f = rng.uniform(-25, 25, (16, 20, 2)).astype(np.float32)
    x, y = flow.encode_flow(f, bound)
    assert x.dtype == np.uint8 and x.shape == (16, 20) and y.shape == (16, 20)
    back = flow.decode_flow(x, y, bound)
    step = 2 * bound / 255
    err = np.abs(back - np.clip(f, -bound, bound))
    assert err.max() <= step / 2 + 1e-5
    # golden points of the formula
    x, y = flow.encode_flow(np.array([[[-20.0, 20.0], [0.0, 100.0]]], np.float32), bound)
    np.testing.assert_array_equal(x, [[0, 128]])
    np.testing.assert_array_equal(y, [[255, 255]])


def test_warped_flow_cancels_a_camera_pan():
    first = _texture(120, 160, seed=1, blur=1.5)
    second = _shift_right(first, 3)  # the whole frame moves: camera pan
    plain = flow.OpticalFlow("dis")
    warped = flow.WarpedFlow(plain)
    f, fell_back = warped(first, second)
    assert not fell_back
    inner = f[10:-10, 10:-10]
    assert np.abs(np.median(inner, axis=(0, 1))).max() < 0.5
    assert np.median(plain(first, second)[10:-10, 10:-10, 0]) == pytest.approx(3.0, abs=0.5)


def test_warped_flow_falls_back_on_tiny_frames():
    first = _texture(24, 32)
    f, fell_back = flow.WarpedFlow(flow.OpticalFlow("dis"))(first, _shift_right(first, 3))
    assert fell_back and f.shape == (24, 32, 2)
