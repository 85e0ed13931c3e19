"""Optical flow (TV-L1, DIS, Farneback), warped flow, and the flow <-> uint8 encoding.

Algorithms: "tvl1" (OpenCV's DualTVL1, one pair at a time), "tvl1_tensor" (the same TV-L1 as
batched keras.ops tensor code, `tsn_keras.tvl1`, with a preset "parity", "fast" or "tsn" (OpenCV
2.4's GPU TV-L1, the paper's extractor); it computes many pairs in one call,
`OpticalFlow.batch`), "dis" and "farneback".

Flow is computed on grayscale frames at the stored size. A flow field `f[y, x] = (dx, dy)` says
where pixel (x, y) of the first frame moved in the second: content moving right gives dx > 0,
moving down gives dy > 0 (OpenCV's convention for all three algorithms; tests check it).

Encoding (docs/design.md, as TSN's dense_flow does it), per component, with bound b (default 20 px):

    q = round((clip(f, -b, b) + b) * 255 / (2 b))            uint8 in [0, 255]
    f' = q * (2 b) / 255 - b                                  decode_flow

One quantisation step is 2b/255 (0.157 px for b = 20); inside [-b, b] the round trip error is at
most half a step (0.078 px), values beyond +-b come back as +-b. Zero flow encodes to 128 (127.5
rounded), which the model's preprocessing (`x - 128`) maps to ~0. The stored JPEG adds its own
error on top (a few levels at quality 90).

Warped flow (TSN's "warped optical flow", after iDT): ORB features of two consecutive frames are
matched, a homography second -> first is fitted with RANSAC, the second frame is warped onto the
first to cancel the camera motion, and the flow is recomputed. With too few matches or inliers
(small or textureless frames) the plain flow is used and the caller counts the fallback.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

ALGORITHMS = ("tvl1", "tvl1_tensor", "dis", "farneback")
TVL1_PRESETS = (
    "parity",
    "fast",
    "tsn",
)  # tsn_keras.tvl1.PRESETS (not imported here: it is heavier)
DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
DEFAULT_BOUND = 20.0


class OpticalFlow:
    """Dense optical flow between two grayscale frames; one OpenCV object, reused.

    Args:
      algorithm: "tvl1" (cv2.optflow.DualTVL1OpticalFlow, the paper's choice, slow),
        "tvl1_tensor" (tsn_keras.tvl1: the same TV-L1 as batched tensor code; `batched` is True),
        "dis" (cv2.DISOpticalFlow, fast) or "farneback" (cv2.calcOpticalFlowFarneback).
      dis_preset: "ultrafast", "fast" or "medium" (DIS only).
      tvl1_preset: "parity", "fast" or "tsn" (tvl1_tensor only; tsn_keras.tvl1.PRESETS).
    """

    def __init__(
        self, algorithm: str = "tvl1", dis_preset: str = "medium", tvl1_preset: str = "parity"
    ):
        if algorithm not in ALGORITHMS:
            raise ValueError(
                f"flow algorithm must be one of {list(ALGORITHMS)} (--flow). "
                f"Received: {algorithm!r}"
            )
        if dis_preset not in DIS_PRESETS:
            raise ValueError(
                f"dis_preset must be one of {list(DIS_PRESETS)}. Received: {dis_preset!r}"
            )
        if tvl1_preset not in TVL1_PRESETS:
            raise ValueError(
                f"--flow_preset must be one of {list(TVL1_PRESETS)}. Received: {tvl1_preset!r}"
            )
        self.algorithm = algorithm
        self.tvl1_preset = tvl1_preset
        # tvl1_tensor: callers should collect pairs and call `batch` (one compiled call)
        self.batched = algorithm == "tvl1_tensor"
        self._impl = None
        if algorithm == "tvl1":
            if not hasattr(cv2, "optflow"):
                raise ImportError(
                    "TV-L1 needs opencv-contrib (cv2.optflow); install "
                    "opencv-contrib-python-headless or use --flow dis"
                )
            self._impl = cv2.optflow.DualTVL1OpticalFlow_create()
        elif algorithm == "dis":
            self._impl = cv2.DISOpticalFlow_create(DIS_PRESETS[dis_preset])

    def __call__(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """Flow from `first` to `second` (uint8 [H, W]) -> float32 [H, W, 2] (dx, dy)."""
        if first.shape != second.shape or first.ndim != 2:
            raise ValueError(
                f"flow needs two grayscale frames of one size. Received: {first.shape}, "
                f"{second.shape}"
            )
        if self.algorithm == "tvl1_tensor":
            return self.batch(first[None], second[None])[0]
        if self.algorithm == "farneback":
            flow = cv2.calcOpticalFlowFarneback(first, second, None, 0.5, 3, 15, 3, 5, 1.2, 0)
        else:
            flow = self._impl.calc(first, second, None)
        return np.asarray(flow, np.float32)  # [H, W, 2]

    def batch(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """Flow of each pair: uint8 [N, H, W] x2 -> float32 [N, H, W, 2] (one compiled call per
        batch of 32 for tvl1_tensor; a loop over pairs for the OpenCV algorithms)."""
        if self.algorithm == "tvl1_tensor":
            from tsn_keras import tvl1  # imports Keras (and its backend) only when used

            return tvl1.tvl1_flow(first, second, self.tvl1_preset)
        return np.stack([self(a, b) for a, b in zip(first, second, strict=True)])


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 [H, W, 3] -> grayscale uint8 [H, W]."""
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def encode_flow(flow: np.ndarray, bound: float = DEFAULT_BOUND) -> tuple[np.ndarray, np.ndarray]:
    """Float flow [H, W, 2] -> (x, y) uint8 [H, W] each (formula in the module docstring)."""
    if bound <= 0:
        raise ValueError(f"flow bound must be > 0 (--flow_bound). Received: {bound}")
    q = np.round((np.clip(flow, -bound, bound) + bound) * (255.0 / (2.0 * bound)))
    q = q.astype(np.uint8)  # [H, W, 2]
    return np.ascontiguousarray(q[..., 0]), np.ascontiguousarray(q[..., 1])


def decode_flow(x: np.ndarray, y: np.ndarray, bound: float = DEFAULT_BOUND) -> np.ndarray:
    """Inverse of encode_flow: uint8 (x, y) [H, W] -> float32 flow [H, W, 2] in pixels."""
    q = np.stack([x, y], axis=-1).astype(np.float32)  # [H, W, 2]
    return q * np.float32(2.0 * bound / 255.0) - np.float32(bound)


@dataclass(frozen=True)
class WarpSettings:
    """Camera-motion estimation for warped flow.

    Attributes:
      num_features: ORB features per frame.
      min_matches: fewer cross-checked matches (or RANSAC inliers) -> plain flow (fallback).
      ransac_threshold: RANSAC reprojection threshold in pixels.
    """

    num_features: int = 500
    min_matches: int = 20
    ransac_threshold: float = 3.0


class WarpedFlow:
    """Flow with the camera motion removed by a homography (see the module docstring)."""

    def __init__(self, flow: OpticalFlow, settings: WarpSettings = WarpSettings()):
        self.flow = flow
        self.settings = settings
        self._orb = cv2.ORB_create(nfeatures=settings.num_features)
        self._matcher = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True)

    def homography(self, first: np.ndarray, second: np.ndarray) -> np.ndarray | None:
        """3x3 homography mapping `second`'s pixels onto `first`'s, or None (too few matches)."""
        kp1, des1 = self._orb.detectAndCompute(first, None)
        kp2, des2 = self._orb.detectAndCompute(second, None)
        need = self.settings.min_matches
        if des1 is None or des2 is None or len(kp1) < need or len(kp2) < need:
            return None
        matches = self._matcher.match(des1, des2)
        if len(matches) < need:
            return None
        pts1 = np.float32([kp1[m.queryIdx].pt for m in matches])  # [M, 2]
        pts2 = np.float32([kp2[m.trainIdx].pt for m in matches])  # [M, 2]
        h, inliers = cv2.findHomography(pts2, pts1, cv2.RANSAC, self.settings.ransac_threshold)
        if h is None or inliers is None or int(inliers.sum()) < need:
            return None
        return h

    def warp_second(self, first: np.ndarray, second: np.ndarray) -> np.ndarray | None:
        """`second` warped onto `first` (camera motion cancelled), or None (too few matches)."""
        h = self.homography(first, second)
        if h is None:
            return None
        height, width = first.shape
        return cv2.warpPerspective(
            second, h, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )

    def __call__(
        self, first: np.ndarray, second: np.ndarray, plain: np.ndarray | None = None
    ) -> tuple[np.ndarray, bool]:
        """Warped flow first -> second: (float32 [H, W, 2], fell_back_to_plain_flow).

        `plain`, the plain flow if already computed, is returned as is on a fallback.
        """
        warped = self.warp_second(first, second)
        if warped is None:
            return (self.flow(first, second) if plain is None else plain), True
        return self.flow(first, warped), False
