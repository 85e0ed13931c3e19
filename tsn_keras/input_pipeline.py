"""tf.data input pipeline: record shards -> parse -> sample -> decode -> augment -> batches.

    shard files of one modality (shuffled, sharded per input pipeline)
      -> parallel interleave of TFRecordDataset       (serialized SequenceExamples)
      -> shuffle, repeat                              (training)
      -> parse (records.parse_example)                (JPEG bytes of all N stored snippets)
      -> TSN sampling (sampling.sample_snippet_indices: K of the N snippets)
      -> training: draw the crop window (augment.train_crop_box), decode only the K sampled
         snippets, each JPEG cropped to it (records.decode_snippets), flip + resize
         (augment.train_augment_window);  validation: decode, augment.center_crop
                                                           uint8 [K, S, S, C]
      -> batch, prefetch                         ([B, K, S, S, C] uint8, [B] int32 labels)

The pipeline delivers uint8 views; `models.preprocess_input` (channel order, mean) runs in the
training / evaluation step on the accelerator. A batch is then 4x smaller to copy, prefetch
and send to the device than float32, and the host does no per-pixel float work after resizing.

`preprocess_clip` is the one function that turns decoded snippets into views; training,
validation, the SavedModel export and prediction all use it (training=False gives the
deterministic centre view). The training pipeline runs its training branch in two halves
around decoding (window drawn before, flip + resize after), which gives exactly
`preprocess_clip(clip, training=True)` of the whole decoded clip with the same seed (tested).

Randomness is stateless: every example gets its own seed, folded from the pipeline seed, the
input pipeline id and the example's position in the (seeded, deterministic) stream, so a seeded
pipeline gives the same batches on every run, eagerly or in a graph.
"""

from __future__ import annotations

import dataclasses
import os
import random
from collections.abc import Sequence

import tensorflow as tf

from tsn_keras import augment, modalities, records, sampling
from tsn_keras.manifest import MANIFEST_NAME, Manifest

SUBSETS = ("train", "test")
PAD_LABEL = -1  # label of the zero clips that pad evaluation batches (weight 0)


def preprocess_clip(
    clip: tf.Tensor,
    modality: str,
    input_size: int,
    training: bool,
    seed: tf.Tensor | None = None,
    more_fix_crop: bool = True,
    scale_size: int | None = None,
    flip: bool = True,
) -> tf.Tensor:
    """Decoded snippets -> views, shared by training, evaluation, export and predict.

    Args:
      clip: uint8 (or 0-255 float) [K, H, W, C]: RGB order for rgb, raw encoded 0-255
        interleaved x1, y1, ... for flow, L+1 stacked RGB frames for rgbdiff.
      modality: "rgb", "flow", "warped_flow" or "rgbdiff".
      input_size: network input side S.
      training: True: TSN multi-scale corner crop + flow-aware random flip (needs `seed`);
        False: resize the short side to scale_size and take the centre crop.
      seed: int tensor [2], stateless seed of the augmentation (training only).
      more_fix_crop: 13 crop positions instead of 5 (training only).
      scale_size: short side before the centre crop; default input_size * 256 // 224.
      flip: the random horizontal flip (training only).

    Returns:
      uint8 [K, S, S, C] views; `models.preprocess_input(views, backbone, modality)` makes
      them network input.
    """
    if training:
        if seed is None:
            raise ValueError("preprocess_clip(training=True) needs a [2] int seed.")
        return augment.train_augment(clip, modality, input_size, seed, more_fix_crop, flip)
    return augment.center_crop(clip, input_size, scale_size)


def preprocess_batch(
    clips: tf.Tensor, modality: str, input_size: int, scale_size: int | None = None
) -> tf.Tensor:
    """`preprocess_clip(training=False)` of a batch: [B, K, H, W, C] -> uint8 [B, K, S, S, C]."""
    shape = tf.shape(clips)
    b, k = shape[0], shape[1]
    folded = tf.reshape(clips, tf.concat([[b * k], shape[2:]], 0))  # [B*K, H, W, C]
    views = preprocess_clip(folded, modality, input_size, False, scale_size=scale_size)
    out_shape = tf.concat([[b, k], tf.shape(views)[1:]], 0)
    return tf.reshape(views, out_shape)  # [B, K, S, S, C]


@dataclasses.dataclass(frozen=True)
class ViewSpec:
    """How a record becomes model views: the one path from a serialized example to uint8 views.

    Training and validation (`make_dataset`), evaluation (`scoring.test_views`), serving
    (`serve_examples`) and LiteRT calibration all call `record_views` with a ViewSpec, so a
    record gives every caller the same tensors.

    Attributes:
      modality: what to decode.
      num_segments: K snippets per view.
      input_size: view side S.
      snippet_length: L of the stored snippets.
      sampling: "train" (a random snippet per segment, multi-scale crop, flip), "val" (segment
        centres, centre crop) or "test" (K evenly spaced snippets, `crops` crops).
      crops: "test" views per snippet: 1 (centre), 3 or 10 (`augment.crop_views`).
      more_fix_crop: 13 crop positions instead of 5 ("train").
      random_flip: the flow-aware random flip ("train").
    """

    modality: str
    num_segments: int
    input_size: int
    snippet_length: int
    sampling: str = "val"
    crops: int = 1
    more_fix_crop: bool = True
    random_flip: bool = True

    def __post_init__(self):
        modalities.check(self.modality)
        if self.sampling not in sampling.SAMPLING_MODES:
            raise ValueError(
                f"sampling must be one of {sampling.SAMPLING_MODES}. "
                f"Received: sampling={self.sampling!r}"
            )
        if self.crops not in augment.NUM_TEST_CROPS or (self.crops > 1 and self.sampling != "test"):
            raise ValueError(
                f"crops must be one of {augment.NUM_TEST_CROPS}, and 1 unless sampling='test'. "
                f"Received: crops={self.crops}, sampling={self.sampling!r}"
            )

    @property
    def shape(self) -> list[int]:
        """[crops, K, S, S, C] of `record_views`' views."""
        channels = modalities.stored_channels(self.modality, self.snippet_length)
        return [self.crops, self.num_segments, self.input_size, self.input_size, channels]


def record_views(
    serialized: tf.Tensor, spec: ViewSpec, seeds: Sequence[tf.Tensor] | None = None
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """One serialized example -> (uint8 views [crops, K, S, S, C], label int32, video id).

    Runs eagerly and inside tf.data / tf.function. "train" needs `seeds` (the example's
    sampling and augmentation seeds, int [2] each: `example_seeds`) and decodes only the crop
    window of each sampled JPEG; the result equals `preprocess_clip(training=True)` of the
    whole decoded clip with the augmentation seed.
    """
    parsed = records.parse_example(serialized, [spec.modality])
    label = tf.cast(parsed["label"], tf.int32)
    if spec.sampling == "train":
        if seeds is None:
            raise ValueError("record_views with sampling='train' needs the example's seeds")
        sample_seed, augment_seed = seeds
        idx = sampling.sample_snippet_indices(
            parsed["num_snippets"], spec.num_segments, "train", seed=sample_seed
        )
        box = augment.train_crop_box(
            parsed["height"], parsed["width"], spec.modality, spec.input_size, augment_seed,
            spec.more_fix_crop,
        )  # fmt: skip
        window = records.decode_snippets(parsed, spec.modality, idx, spec.snippet_length, box)
        views = augment.train_augment_window(
            window, spec.modality, spec.input_size, augment_seed, spec.random_flip
        )[None]  # [1, K, S, S, C]
    else:
        idx = sampling.sample_snippet_indices(
            parsed["num_snippets"], spec.num_segments, spec.sampling
        )
        clip = records.decode_snippets(parsed, spec.modality, idx, spec.snippet_length)
        views = augment.crop_views(clip, spec.modality, spec.input_size, spec.crops)
    return tf.ensure_shape(views, spec.shape), label, parsed["video_id"]


def example_seeds(base_seed: tf.Tensor, index) -> list[tf.Tensor]:
    """(sampling seed, augmentation seed) of the example at `index` of a pipeline's stream.

    base_seed is [pipeline seed, input pipeline id] (int64 [2]); see the module docstring.
    """
    example_seed = tf.random.experimental.stateless_fold_in(base_seed, index)
    return tf.unstack(tf.random.experimental.stateless_split(example_seed, 2))


Records = str | Manifest  # a records folder (or its Manifest, read once) or a glob


def open_records(records_path: Records) -> Manifest | None:
    """The manifest of a records folder or of the folder a glob points into (None if none).

    A caller that reads the same records several times (training: train and test subsets,
    counts, snippet length) calls this once and passes the Manifest on.
    """
    if isinstance(records_path, Manifest):
        return records_path
    folder = records_path if tf.io.gfile.isdir(records_path) else os.path.dirname(records_path)
    if tf.io.gfile.exists(os.path.join(folder, MANIFEST_NAME)):
        return Manifest.read(folder)
    return None


def record_files(records_path: Records, subset: str, modality: str | None = None) -> list[str]:
    """Shard files of a subset (and modality): from a records folder's manifest, or a glob.

    Raises:
      FileNotFoundError: when the folder has no manifest or the glob matches nothing.
    """
    if isinstance(records_path, Manifest):
        return records_path.shard_files(subset, modality)
    if tf.io.gfile.isdir(records_path):
        return Manifest.read(records_path).shard_files(subset, modality)
    files = sorted(tf.io.gfile.glob(records_path))
    if not files:
        raise FileNotFoundError(
            f"--records {records_path!r} is neither a records folder (with "
            f"{MANIFEST_NAME}) nor a glob that matches .tfrecord files"
        )
    return files


def snippet_length_of(manifest: Manifest | None, files: list[str], modality: str) -> int:
    """L of the stored snippets: from the manifest, else read from the first example."""
    if manifest is not None:
        return manifest.snippet_length
    first = next(iter(tf.data.TFRecordDataset(files[:1]).take(1)), None)
    if first is None:
        raise ValueError(f"{files[0]} holds no examples; cannot tell the snippet length")
    return int(records.parse_example(first, [modality])["snippet_length"])


def examples_per_pipeline(
    records_path: Records, subset: str, num_input_pipelines: int = 1
) -> list[int]:
    """Examples each input pipeline reads, with the sharding `make_dataset` uses (manifest).

    Needed to run every pipeline for the same number of evaluation batches (a multi-worker
    requirement: all workers must step together).
    """
    manifest = open_records(records_path)
    if manifest is None or subset not in manifest.sets:
        raise ValueError(
            f"{records_path}: counting examples needs the manifest.json with subset '{subset}'"
        )
    shards = manifest.sets[subset].counts
    if len(shards) >= num_input_pipelines:
        return [sum(shards[i::num_input_pipelines]) for i in range(num_input_pipelines)]
    total = sum(shards)
    return [len(range(i, total, num_input_pipelines)) for i in range(num_input_pipelines)]


def make_dataset(
    records_path: Records,
    subset: str,
    modality: str,
    num_segments: int,
    batch_size: int,
    training: bool,
    input_size: int = 224,
    seed: int | None = None,
    input_context: tf.distribute.InputContext | None = None,
    more_fix_crop: bool = True,
    random_flip: bool = True,
    shuffle_buffer: int = 256,
    cycle_length: int = 4,
    repeat: bool | None = None,
    pad_to_batches: int | None = None,
    skip_corrupt_records: bool = False,
    skip_examples: int = 0,
) -> tf.data.Dataset:
    """Batches of TSN clips from TFRecord shards.

    Args:
      records_path: a records folder (manifest.json + shards), its `Manifest`, or a glob of
        .tfrecord files.
      subset: "train" or "test" (the folder's subsets; validation reads "test").
      modality: "rgb", "flow", "warped_flow" or "rgbdiff" (must be stored in the records).
      num_segments: K snippets per clip.
      batch_size: GLOBAL batch size; with `input_context` each pipeline batches
        `input_context.get_per_replica_batch_size(batch_size)`.
      training: shuffle, repeat, random segment sampling and augmentation; else segment
        centres ("val") and the centre crop, one pass, in file order.
      input_size: network input side S.
      seed: makes shuffling, sampling and augmentation deterministic (tests, resumable
        runs); None draws a fresh seed and lets tf.data run out of order for speed.
      input_context: from `strategy.distribute_datasets_from_function`: shards files (or,
        with fewer files than pipelines, examples) per input pipeline.
      more_fix_crop: 13 crop positions instead of 5.
      random_flip: flip clips horizontally at random when training (flow-aware).
      shuffle_buffer: videos in the shuffle buffer. A serialized record of 25 snippets at
        340x256 takes ~0.7 MB (rgb) or ~1.1 MB (flow), so 256 of them take ~0.2-0.3 GB;
        size it to memory.
      cycle_length: files read in parallel.
      repeat: repeat forever; default = training.
      pad_to_batches: for evaluation under several pipelines: yield exactly this many full
        batches, padding with zero clips labelled PAD_LABEL (-1) (give them weight 0).
      skip_corrupt_records: a damaged record ends its file's reading (with TF's warning)
        instead of raising DataLossError; the records after it in that file are not read.
      skip_examples: start this many examples into this pipeline's stream (a run resumed
        mid-epoch). They are read but not decoded, and every later example keeps its position,
        hence its seeds: with a seed, the batches are exactly those an unbroken stream gives
        after its first skip_examples examples.

    Returns:
      tf.data.Dataset of (views uint8 [B, K, S, S, C], labels int32 [B]); apply
      `models.preprocess_input` on the device.
    """
    modalities.check(modality)
    if subset not in SUBSETS:
        raise ValueError(f"subset must be one of {SUBSETS}. Received: subset={subset!r}")
    if num_segments < 1 or batch_size < 1:
        raise ValueError(
            f"num_segments and batch_size must be >= 1. Received: num_segments={num_segments}, "
            f"batch_size={batch_size}"
        )
    repeat = training if repeat is None else repeat
    manifest = open_records(records_path)  # read once
    in_folder = isinstance(records_path, Manifest) or tf.io.gfile.isdir(records_path)
    files = record_files(manifest if in_folder and manifest else records_path, subset, modality)
    snippet_length = snippet_length_of(manifest, files, modality)

    num_pipelines, pipeline_id, per_batch = 1, 0, batch_size
    if input_context is not None:
        num_pipelines = input_context.num_input_pipelines
        pipeline_id = input_context.input_pipeline_id
        per_batch = input_context.get_per_replica_batch_size(batch_size)
    deterministic = seed is not None
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
    base_seed = tf.constant([seed, pipeline_id], tf.int64)

    ds = _serialized_examples(
        files, training, seed, deterministic, num_pipelines, pipeline_id, shuffle_buffer,
        cycle_length, repeat, skip_corrupt_records,
    )  # fmt: skip
    ds = ds.enumerate()  # the position gives each example its own seed
    if skip_examples:
        ds = ds.skip(skip_examples)  # before decoding: a skipped example costs only its read
    spec = ViewSpec(
        modality, num_segments, input_size, snippet_length, "train" if training else "val",
        more_fix_crop=more_fix_crop, random_flip=random_flip,
    )  # fmt: skip

    def load(index, serialized):
        views, label, _ = record_views(serialized, spec, example_seeds(base_seed, index))
        return views[0], label  # [K, S, S, C]

    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    return _batched(ds, per_batch, training, pad_to_batches, deterministic)


def _serialized_examples(
    files, training, seed, deterministic, num_pipelines, pipeline_id, shuffle_buffer,
    cycle_length, repeat, skip_corrupt_records,
) -> tf.data.Dataset:  # fmt: skip
    """This input pipeline's serialized examples: its files (or examples), shuffled, repeated."""
    shard_by_file = len(files) >= num_pipelines
    ds = tf.data.Dataset.from_tensor_slices(files)
    if shard_by_file and num_pipelines > 1:
        ds = ds.shard(num_pipelines, pipeline_id)
    if training:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    read = tf.data.TFRecordDataset
    if skip_corrupt_records:

        def read(path):
            return tf.data.TFRecordDataset(path).ignore_errors(log_warning=True)

    ds = ds.interleave(
        read,
        cycle_length=min(cycle_length, len(files)),
        num_parallel_calls=tf.data.AUTOTUNE,
        # Sharding examples needs the same order in every pipeline.
        deterministic=deterministic or not shard_by_file,
    )
    if not shard_by_file:
        ds = ds.shard(num_pipelines, pipeline_id)
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    return ds.repeat() if repeat else ds


def _batched(ds, per_batch, training, pad_to_batches, deterministic) -> tf.data.Dataset:
    """Batches of (views, labels); evaluation under several pipelines pads to whole batches."""
    if pad_to_batches is not None:
        spec = ds.element_spec[0]
        if not spec.shape.is_fully_defined():
            raise ValueError(f"padding needs a static clip shape; got {spec.shape}")
        pad = tf.data.Dataset.from_tensors(
            (tf.zeros(spec.shape, spec.dtype), tf.constant(PAD_LABEL, tf.int32))
        ).repeat()
        ds = ds.concatenate(pad).batch(per_batch, drop_remainder=True).take(pad_to_batches)
    else:
        ds = ds.batch(per_batch, drop_remainder=training)
    options = tf.data.Options()
    options.deterministic = deterministic
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)
