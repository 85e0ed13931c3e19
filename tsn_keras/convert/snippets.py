"""One video -> its serialized examples, one per modality (`convert_video`): worker-side code.

`convert_video` runs in the spawned worker processes (`workers`), in Beam's workers
(`tsn_keras.beam`), in `predict` and in `timeline` (which also uses `SnippetPlan` and `Engines`).
This module never imports TensorFlow: every spawned worker imports it, and TensorFlow would
cost each one ~3 s and ~600 MB (only --flow tvl1_tensor loads Keras, in `flow.OpticalFlow`).

Frames for a video with F decoded frames, N snippets (0 = dense: every frame) of length L:
starts = `sampling.snippet_frame_indices(F, N, L)[:, 0]`; rgb stores frame `start`; rgbdiff
frames `start..start+L` clamped to F-1; flow field j = flow(frame j -> frame j+1) for
j = start..start+L-1 clamped to max(F-2, 0) (a 1-frame video gives one zero field).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass

import cv2
import numpy as np

from tsn_keras import flow as flow_lib
from tsn_keras import modalities as modalities_lib
from tsn_keras import records, sampling
from tsn_keras import video as video_lib


@dataclass(frozen=True)
class ConvertConfig:
    """What to store for each video (everything that changes the examples).

    Attributes:
      modalities: subset of modalities.MODALITIES.
      flow_algorithm: "tvl1", "tvl1_tensor", "dis" or "farneback" (flow and warped_flow).
      flow_bound: clip bound in pixels for the uint8 encoding.
      dis_preset: DIS preset, "ultrafast", "fast" or "medium".
      flow_preset: tvl1_tensor's preset, "parity" or "fast" (tsn_keras.tvl1.PRESETS).
      num_snippets: N evenly spaced snippets per video; 0 = every frame (dense).
      snippet_length: L consecutive frames per flow / rgbdiff snippet.
      width: stored width (ignored with short_side).
      height: stored height (ignored with short_side).
      short_side: keep the aspect ratio, shorter side this many pixels.
      jpeg_quality: 0-100.
      decode_mode: "auto" (one pass when the container's frame count is right) or "two_pass".
      warp: warped-flow settings.
      min_decoded_fraction: a video that decodes fewer than this fraction of the frames its
        container declares is a failure (truncated); above it, a shortfall is stored, warned
        about and listed in the manifest (`short_videos`).
    """

    modalities: tuple[str, ...] = ("rgb", "flow")
    flow_algorithm: str = "tvl1"
    flow_bound: float = flow_lib.DEFAULT_BOUND
    dis_preset: str = "medium"
    flow_preset: str = "parity"
    num_snippets: int = 25
    snippet_length: int = 5
    width: int = video_lib.DEFAULT_WIDTH
    height: int = video_lib.DEFAULT_HEIGHT
    short_side: int | None = None
    jpeg_quality: int = 90
    decode_mode: str = "auto"
    warp: flow_lib.WarpSettings = flow_lib.WarpSettings()
    min_decoded_fraction: float = 0.5

    def __post_init__(self):
        object.__setattr__(self, "modalities", records.check_modalities(self.modalities))
        if self.flow_algorithm not in flow_lib.ALGORITHMS:
            raise ValueError(
                f"--flow must be one of {list(flow_lib.ALGORITHMS)}. "
                f"Received: {self.flow_algorithm!r}"
            )
        if self.flow_preset not in flow_lib.TVL1_PRESETS:
            raise ValueError(
                f"--flow_preset must be one of {list(flow_lib.TVL1_PRESETS)}. "
                f"Received: {self.flow_preset!r}"
            )
        if not (math.isfinite(self.flow_bound) and self.flow_bound > 0):
            raise ValueError(f"--flow_bound must be a number > 0. Received: {self.flow_bound}")
        if self.num_snippets < 0:
            raise ValueError(f"--snippets must be >= 0 (0 = dense). Received: {self.num_snippets}")
        if self.snippet_length < 1:
            raise ValueError(f"--snippet_length must be >= 1. Received: {self.snippet_length}")
        if not 0 <= self.jpeg_quality <= 100:
            raise ValueError(f"--jpeg_quality must be in [0, 100]. Received: {self.jpeg_quality}")
        if self.decode_mode not in ("auto", "two_pass"):
            raise ValueError(
                f"decode_mode must be 'auto' or 'two_pass'. Received: {self.decode_mode!r}"
            )
        if not 0 <= self.min_decoded_fraction <= 1:  # also refuses nan
            raise ValueError(
                f"--min_decoded_fraction must be in [0, 1]. Received: {self.min_decoded_fraction}"
            )
        video_lib.Resize(self.width, self.height, self.short_side)  # validates the size

    @property
    def resize(self) -> video_lib.Resize:
        return video_lib.Resize(self.width, self.height, self.short_side)

    @property
    def has_flow(self) -> bool:
        return any(modalities_lib.is_flow(m) for m in self.modalities)

    @classmethod
    def from_dict(cls, settings: dict) -> ConvertConfig:
        """The config a `dataclasses.asdict` of one gave (a manifest's or an export's
        "conversion" record, read back from JSON: lists for tuples, a dict for `warp`)."""
        settings = dict(settings)
        if isinstance(settings.get("warp"), dict):
            settings["warp"] = flow_lib.WarpSettings(**settings["warp"])
        settings["modalities"] = tuple(settings["modalities"])
        return cls(**settings)

    def digest(self) -> str:
        """Short hash of every setting (shards made with other settings are not reused)."""
        fields = dataclasses.asdict(self)
        # Added after folders were converted: left out at their defaults so those still resume.
        if self.min_decoded_fraction == 0.5:
            del fields["min_decoded_fraction"]
        if self.flow_algorithm != "tvl1_tensor":
            del fields["flow_preset"]
        else:  # the solver's settings, not only the preset's name: a preset that changes
            # (parity's budget did) must not resume a folder half made with the old one
            from tsn_keras import tvl1

            fields["flow_solver"] = dataclasses.asdict(tvl1.settings_for(self.flow_preset))
        return digest(fields)


@dataclass(frozen=True)
class VideoJob:
    """One video to convert.

    Attributes:
      path: the file.
      video_id: relative path with '/' (`splits.video_id`), stored in the example.
      label: 0-based class index.
      label_text: class name.
    """

    path: str
    video_id: str
    label: int
    label_text: str


@dataclass(frozen=True)
class VideoResult:
    """A worker's answer: the serialized examples, or why there are none, and counters.

    Attributes:
      examples: modality -> serialized SequenceExample holding that modality only (and the
        full context), one per `ConvertConfig.modalities`; None when the video failed.
      num_frames: frames that decoded.
      declared_frames: the frame count the container declares (0 = none).
    """

    job: VideoJob
    examples: dict[str, bytes] | None
    reason: str | None = None
    num_frames: int = 0
    flow_pairs: int = 0
    warped_fallbacks: int = 0
    declared_frames: int = 0

    @property
    def short(self) -> bool:
        """Decoded clearly fewer frames than declared (`is_short`)."""
        return is_short(self.num_frames, self.declared_frames)


def is_short(decoded: int, declared: int) -> bool:
    """Whether `decoded` falls short of the container's `declared` count by more than noise.

    Containers are often one or two frames off (B-frames, edit lists): a shortfall counts when
    it is more than 2 frames and more than 5% of the declared count.
    """
    missing = declared - decoded
    return declared > 0 and missing > 2 and missing > 0.05 * declared


def shortfall_text(decoded: int, declared: int) -> str:
    """'decoded 10 of 41 declared frames': the words of the warning and the failure."""
    return f"decoded {decoded} of {declared} declared frames"


def digest(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


class SnippetPlan:
    """Frames one example needs for F frames; consumes them in order (video.FramePlan)."""

    def __init__(self, num_frames: int, config: ConvertConfig, engines: Engines):
        self.config, self.engines = config, engines
        n, length = num_frames, config.snippet_length
        idx = sampling.snippet_frame_indices(n, config.num_snippets, length)  # [N, L]
        self.starts = idx[:, 0]  # [N]
        self.rgbdiff_idx = np.minimum(self.starts[:, None] + np.arange(length + 1), n - 1)
        self.field_idx = np.minimum(self.starts[:, None] + np.arange(length), max(n - 2, 0))
        mods = config.modalities
        jpeg = set()
        if "rgb" in mods:
            jpeg |= set(self.starts.tolist())
        if "rgbdiff" in mods:
            jpeg |= set(self.rgbdiff_idx.ravel().tolist())
        self.fields = set(self.field_idx.ravel().tolist()) if config.has_flow else set()
        self.jpeg_frames = jpeg
        self.indices = frozenset(jpeg | self.fields | {min(f + 1, n - 1) for f in self.fields})
        self.num_frames = n
        self.jpegs: dict[int, bytes] = {}
        self.flow_jpegs: dict[str, dict[int, tuple[bytes, bytes]]] = {
            m: {} for m in modalities_lib.FLOW_MODALITIES
        }
        self.prev: tuple[int, np.ndarray] | None = None
        self.flow_pairs = 0
        self.fallbacks = 0
        # batched flow (tvl1_tensor): (modality, field, first, second) waiting for `finish`;
        # warped-flow fields that fell back to the plain flow of the same field
        self.pending: list[tuple[str, int, np.ndarray, np.ndarray]] = []
        self.fallback_fields: list[int] = []

    def add(self, index: int, rgb: np.ndarray) -> None:
        q = self.config.jpeg_quality
        if index in self.jpeg_frames:
            self.jpegs[index] = records.encode_jpeg(rgb, q)
        if not self.fields:
            return
        gray = flow_lib.to_gray(rgb)
        if self.num_frames == 1:
            self._flow_field(0, gray, gray)
        elif self.prev is not None and self.prev[0] == index - 1:
            self._flow_field(index - 1, self.prev[1], gray)
        self.prev = (index, gray) if index in self.fields else None

    def _flow_field(self, j: int, first: np.ndarray, second: np.ndarray) -> None:
        bound, q = self.config.flow_bound, self.config.jpeg_quality
        mods = self.config.modalities
        if self.engines.flow.batched:  # all of the video's pairs go through the solver at once
            self._queue_field(j, first, second)
            return
        plain = None
        if "flow" in mods:
            plain = self.engines.flow(first, second)
            x, y = flow_lib.encode_flow(plain, bound)
            self.flow_jpegs["flow"][j] = (records.encode_jpeg(x, q), records.encode_jpeg(y, q))
            self.flow_pairs += 1
        if "warped_flow" in mods:
            f, fell_back = self.engines.warped(first, second, plain)
            x, y = flow_lib.encode_flow(f, bound)
            enc = (records.encode_jpeg(x, q), records.encode_jpeg(y, q))
            self.flow_jpegs["warped_flow"][j] = enc
            self.flow_pairs += 1
            self.fallbacks += int(fell_back)

    def _queue_field(self, j: int, first: np.ndarray, second: np.ndarray) -> None:
        mods = self.config.modalities
        if "flow" in mods:
            self.pending.append(("flow", j, first, second))
        if "warped_flow" in mods:
            warped = self.engines.warped.warp_second(first, second)
            self.fallbacks += int(warped is None)
            if warped is None and "flow" in mods:  # the plain flow, computed once
                self.fallback_fields.append(j)
            else:
                self.pending.append(("warped_flow", j, first, second if warped is None else warped))

    def pending_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """The queued flow pairs (tvl1_tensor): (firsts, seconds), uint8 [P, H, W] each."""
        return (np.stack([p[2] for p in self.pending]), np.stack([p[3] for p in self.pending]))

    def finish(self, flows: np.ndarray | None = None) -> None:
        """Encodes the queued flow fields (tvl1_tensor), solving them in one batched call
        unless `flows` [P, H, W, 2] of `pending_pairs` come from elsewhere (`flow_batches`)."""
        if not self.pending:  # (a fallback field always has its plain field queued)
            return
        if flows is None:
            flows = self.engines.flow.batch(*self.pending_pairs())  # [P, H, W, 2]
        bound, q = self.config.flow_bound, self.config.jpeg_quality
        for (modality, j, _, _), f in zip(self.pending, flows, strict=True):
            x, y = flow_lib.encode_flow(f, bound)
            self.flow_jpegs[modality][j] = (records.encode_jpeg(x, q), records.encode_jpeg(y, q))
            self.flow_pairs += 1
        for j in self.fallback_fields:
            self.flow_jpegs["warped_flow"][j] = self.flow_jpegs["flow"][j]
            self.flow_pairs += 1
        self.pending, self.fallback_fields = [], []

    def encoded(self, modality: str) -> dict[str, list]:
        """One modality's JPEGs, keyed as `records.serialize_example` takes them."""
        if modality == "rgb":
            return {"rgb": [self.jpegs[s] for s in self.starts.tolist()]}
        if modality == "rgbdiff":
            return {"rgbdiff": [[self.jpegs[i] for i in row] for row in self.rgbdiff_idx.tolist()]}
        table = self.flow_jpegs[modality]  # flow, warped_flow
        rows = self.field_idx.tolist()
        return {
            f"{modality}_x": [[table[j][0] for j in row] for row in rows],
            f"{modality}_y": [[table[j][1] for j in row] for row in rows],
        }

    def examples(
        self,
        video_id: str,
        label: int,
        label_text: str,
        num_frames: int,
        fps: float,
        source_size: tuple[int, int],
    ) -> dict[str, bytes]:
        """The serialized SequenceExample of each modality for the frames this plan saw.

        Args:
          video_id, label, label_text: the clip's identity (`records.ClipInfo`).
          num_frames: the frames decoded.
          fps: the source's frame rate.
          source_size: (height, width) of the decoded frames before resizing.
        """
        config = self.config
        height, width = config.resize.output_size(*source_size)
        clip = records.ClipInfo(
            video_id=video_id,
            label=label,
            label_text=label_text,
            num_frames=num_frames,
            fps=fps,
            original_height=source_size[0],
            original_width=source_size[1],
            height=height,
            width=width,
            snippet_length=config.snippet_length,
            frame_indices=tuple(self.starts.tolist()),
            flow_algorithm=config.flow_algorithm if config.has_flow else "",
            flow_bound=config.flow_bound,
            jpeg_quality=config.jpeg_quality,
        )
        return {m: records.serialize_example(clip, self.encoded(m)) for m in config.modalities}


class Engines:
    """Per-process resources: OpenCV flow objects (built once per worker), decoder threads."""

    def __init__(self, config: ConvertConfig, decode_threads: int = 0):
        self.decode_threads = decode_threads
        self.flow = None
        self.warped = None
        if config.has_flow:
            self.flow = flow_lib.OpticalFlow(
                config.flow_algorithm, config.dis_preset, config.flow_preset
            )
            self.warped = flow_lib.WarpedFlow(self.flow, config.warp)


@dataclass
class PendingFlow:
    """A decoded video whose flow pairs wait for the batched solver (--flow tvl1_tensor).

    `convert_video(..., solve_flow=False)` returns it instead of a VideoResult, without its
    engines, so a worker can send it to the process that owns the solver: `flow_batches` runs
    the pairs of consecutive videos through the solver together, and `finish_video` then
    encodes the flow and builds the examples.
    """

    job: VideoJob
    info: video_lib.VideoInfo
    plan: SnippetPlan


def convert_video(
    job: VideoJob, config: ConvertConfig, engines: Engines | None = None, solve_flow: bool = True
) -> VideoResult | PendingFlow:
    """Decodes one video and builds its serialized examples, one per modality.

    Args:
      job: the video.
      config: what to store.
      engines: reuse flow objects across videos (built from config when None).
      solve_flow: False: a video with batched flow pairs (tvl1_tensor) comes back as a
        PendingFlow, its pairs unsolved (`flow_batches`); True: they are solved here.

    Returns:
      VideoResult: examples {modality: bytes} for `config.modalities`, or examples None and the
      reason (DecodeError / OpenCV error / fewer decoded frames than
      `config.min_decoded_fraction` of the declared count); or a PendingFlow (`solve_flow`).
    """
    engines = engines or Engines(config)
    try:
        info, plan = video_lib.decode_selected(
            job.path,
            lambda n: SnippetPlan(n, config, engines),
            config.resize,
            config.decode_mode,
            engines.decode_threads,
        )
    except video_lib.DecodeError as e:
        return VideoResult(job, None, e.reason)
    except cv2.error as e:
        return VideoResult(job, None, f"OpenCV error: {str(e).strip().splitlines()[-1]}")
    decoded, declared = info.num_frames, info.declared_frames
    if declared > 0 and decoded < config.min_decoded_fraction * declared:
        reason = (
            f"{shortfall_text(decoded, declared)} ({decoded / declared:.2f} < "
            f"--min_decoded_fraction {config.min_decoded_fraction:g}): truncated or damaged"
        )
        return VideoResult(job, None, reason, decoded, declared_frames=declared)
    if plan.pending and not solve_flow:
        plan.engines = None  # OpenCV objects do not travel between processes
        return PendingFlow(job, info, plan)
    return finish_video(job, info, plan)


def finish_video(
    job: VideoJob, info: video_lib.VideoInfo, plan: SnippetPlan, flows: np.ndarray | None = None
) -> VideoResult:
    """The VideoResult of a decoded video: its queued flow encoded (`SnippetPlan.finish`: solved
    here, or `flows` of its pending pairs solved elsewhere), its examples built."""
    plan.finish(flows)
    examples = plan.examples(
        job.video_id,
        job.label,
        job.label_text,
        info.num_frames,
        info.fps,
        (info.height, info.width),
    )
    return VideoResult(
        job,
        examples,
        None,
        info.num_frames,
        plan.flow_pairs,
        plan.fallbacks,
        declared_frames=info.declared_frames,
    )
