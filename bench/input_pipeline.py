"""Input-pipeline throughput: clips/s for rgb and flow, K=3, training augmentation.

    .venv/bin/python bench/input_pipeline.py                      # synthetic 340x256 records
    .venv/bin/python bench/input_pipeline.py --records tfrecords/ucf101_split1

Without --records it writes synthetic records shaped like the converter's output (340x256
frames, 25 snippets, L=5, JPEG quality 90, one file per shard and modality; smooth images so
the JPEG sizes are close to real frames and flow fields) into a temporary folder. It then
times `input_pipeline.make_dataset` (training=True: shuffle, parse, segment sampling, decoding
only the sampled JPEGs cropped to the drawn window, flip, resize, batching uint8 views) and
prints one row per modality:

  clips/s            clips delivered per second after a warm-up (all CPU cores tf.data gets)
  CPU ms/clip        process CPU time per clip (all threads): cores needed = rate x this;
                     steadier than clips/s on a VM whose hypervisor steals CPU time
  bytes read/clip    record bytes read per clip (whole examples of that modality: N snippets)
  JPEG bytes/clip    bytes of the JPEGs actually decoded per clip (K snippets only)
  batch MB/s         uint8 batch bytes delivered per second (what goes to the accelerator)

a second table: CPU milliseconds per clip of each stage, each run alone as a tf.data map, to
see which one bounds the throughput; and, with --train_step, the training step of --backbone
fed by the pipeline against the same step fed from memory (is the pipeline ever the step's
bottleneck?).

Targets on a 2-core machine: >= 500 rgb and >= 100 flow clips/s.
"""

import os
import tempfile
import time

import cv2
import numpy as np
import tensorflow as tf
from absl import app, flags

from tsn_keras import augment, input_pipeline, records, synthetic
from tsn_keras.manifest import Manifest

FLAGS = flags.FLAGS
flags.DEFINE_string("records", None, "A records folder; default: synthetic records.")
flags.DEFINE_list("modalities", ["rgb", "flow"], "Modalities to time.")
flags.DEFINE_integer("num_segments", 3, "K snippets per clip.")
flags.DEFINE_integer("batch_size", 32, "Clips per batch.")
flags.DEFINE_integer("input_size", 224, "Crop side.")
flags.DEFINE_integer("batches", 40, "Timed batches per modality (after warm-up).")
flags.DEFINE_integer("videos", 64, "Synthetic videos to write.")
flags.DEFINE_string("json", None, "Also write the rows to this JSON file (bench/run_all.py).")
flags.DEFINE_bool("train_step", False, "Also time training steps fed by the pipeline vs memory.")
flags.DEFINE_string("backbone", "bn_inception", "Backbone of --train_step.")
flags.DEFINE_integer("step_batch", 8, "Clips per training step of --train_step.")
flags.DEFINE_integer("steps", 4, "Timed training steps of --train_step (per feeding).")


def _smooth_image(rng, height: int, width: int, channels: int, noise=2.0, coarse=8):
    """Upsampled coarse noise plus fine noise: JPEG sizes near real frames (not white noise)."""
    small = rng.integers(0, 256, (height // coarse, width // coarse, channels)).astype(np.uint8)
    image = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    image = image.reshape(height, width, channels)
    noise = rng.normal(0, noise, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def write_synthetic_records(
    out_dir: str,
    videos: int,
    snippets: int = 25,
    length: int = 5,
    height: int = 256,
    width: int = 340,
    shards: int = 4,
) -> str:
    """A records folder shaped like the converter's output, from pools of smooth JPEGs."""
    rng = np.random.default_rng(0)
    rgb_pool = [records.encode_jpeg(_smooth_image(rng, height, width, 3)) for _ in range(40)]
    flow_pool = []
    for _ in range(80):
        field = _smooth_image(rng, height, width, 1, noise=0.5, coarse=32)[..., 0]
        field = (128 + (field.astype(np.int16) - 128) // 6).astype(np.uint8)  # small motion
        flow_pool.append(records.encode_jpeg(field))
    examples = []
    for v in range(videos):
        info = records.ClipInfo(
            video_id=f"Class{v % 8}/v_{v:04d}.avi",
            label=v % 8,
            label_text=f"Class{v % 8}",
            num_frames=150,
            fps=25.0,
            original_height=240,
            original_width=320,
            height=height,
            width=width,
            snippet_length=length,
            frame_indices=tuple(int(i) for i in np.linspace(0, 145, snippets)),
            flow_algorithm="tvl1",
        )
        pick = lambda pool: pool[rng.integers(len(pool))]  # noqa: E731
        encoded = {"rgb": [pick(rgb_pool) for _ in range(snippets)]}
        for axis in ("flow_x", "flow_y"):
            encoded[axis] = [[pick(flow_pool) for _ in range(length)] for _ in range(snippets)]
        examples.append((info, encoded))
    return synthetic.write_records(
        out_dir, {"train": examples}, [f"Class{i}" for i in range(8)], ("rgb", "flow"), shards,
        snippets=snippets, snippet_length=length, flow={"algorithm": "tvl1", "bound": 20.0},
        height=height, width=width,
    )  # fmt: skip


def _jpeg_bytes_per_clip(records_dir: str, modality: str, k: int) -> float:
    """Mean bytes of the JPEGs a clip decodes: K snippets x (1 rgb | 2L flow) JPEGs."""
    total, count = 0, 0
    files = Manifest.read(records_dir).shard_files("train", modality)
    for serialized in tf.data.TFRecordDataset(files).take(16):
        parsed = records.parse_example(serialized, [modality])
        if modality == "rgb":
            sizes = tf.strings.length(parsed["rgb"]).numpy()  # [N]
        else:
            sizes = (
                tf.reduce_sum(tf.strings.length(parsed[f"{modality}_x"]), 1)
                + tf.reduce_sum(tf.strings.length(parsed[f"{modality}_y"]), 1)
            ).numpy()
        total += sizes.mean() * k
        count += 1
    return total / count


def _cpu_ms_per_element(ds: tf.data.Dataset, n: int) -> float:
    """Process CPU milliseconds per element of `ds` (batched by 32, after a warm-up)."""
    it = iter(ds.batch(32).prefetch(2))
    next(it)
    start = time.process_time()
    for _ in range(n // 32):
        next(it)
    return 1000 * (time.process_time() - start) / (n // 32 * 32)


def _stage_ms(records_dir: str, modality: str, n: int = 640) -> dict:
    """CPU milliseconds per clip of each stage, each run as a parallel tf.data map.

    read: TFRecordDataset of the modality's shards; then, on examples held in memory, each
    stage is the CPU added over the previous one: parse (parse_example), decode (the K sampled
    JPEGs cropped to the window), views (flip, resize, round to uint8).
    """
    files = Manifest.read(records_dir).shard_files("train", modality)
    k, size = FLAGS.num_segments, FLAGS.input_size
    length = Manifest.read(records_dir).snippet_length
    idx = tf.constant([2, 10, 20][:k] + [0] * max(k - 3, 0), tf.int32)
    seed = tf.constant([1, 2], tf.int64)

    def parse(s):
        return records.parse_example(s, [modality])["num_snippets"]

    def decode(s):
        p = records.parse_example(s, [modality])
        box = augment.train_crop_box(p["height"], p["width"], modality, size, seed)
        return records.decode_snippets(p, modality, idx, length, box)

    def views(s):
        return augment.train_augment_window(decode(s), modality, size, seed)

    reading = tf.data.TFRecordDataset(files).map(tf.strings.length).repeat()
    examples = tf.data.TFRecordDataset(files).take(64).cache().repeat()
    cumulative = [
        _cpu_ms_per_element(examples.map(fn, num_parallel_calls=tf.data.AUTOTUNE), n)
        for fn in (parse, decode, views)
    ]
    return {
        "read": _cpu_ms_per_element(reading, n),
        "parse": cumulative[0],
        "decode": cumulative[1] - cumulative[0],
        "views": cumulative[2] - cumulative[1],
    }


def bench(records_dir: str, modality: str) -> dict:
    stages = _stage_ms(records_dir, modality)  # first: no pipeline threads running yet
    ds = input_pipeline.make_dataset(
        records_dir,
        "train",
        modality,
        FLAGS.num_segments,
        FLAGS.batch_size,
        training=True,
        input_size=FLAGS.input_size,
    )
    it = iter(ds)
    for _ in range(5):  # warm-up: autotune, file open, first decode
        next(it)
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(FLAGS.batches):
        clips, _ = next(it)
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu_start  # all threads of this process
    del it  # stop the pipeline's threads before the next measurement
    clips_per_s = FLAGS.batches * FLAGS.batch_size / elapsed
    files = Manifest.read(records_dir).shard_files("train", modality)
    manifest = Manifest.read(records_dir)
    bytes_per_clip = sum(os.path.getsize(f) for f in files) / manifest.subset("train").num_examples
    return {
        "modality": modality,
        "clips_per_s": clips_per_s,
        "cpu_ms": 1000 * cpu / (FLAGS.batches * FLAGS.batch_size),
        "shape": tuple(clips.shape),
        "bytes_read": bytes_per_clip,
        "jpeg_bytes": _jpeg_bytes_per_clip(records_dir, modality, FLAGS.num_segments),
        "stages": stages,
    }


def _train_step_seconds(records_dir: str, modality: str) -> dict:
    """Median seconds of a training step fed by the pipeline, and by one batch kept in memory.

    The step is the one train.py runs: uint8 views -> `models.preprocess_input` -> the TSN model
    (forward, backward, SGD). Equal times mean the pipeline keeps up with the step; on this
    CPU the pipeline also takes cores from the step, so any gap is that share.
    """
    import keras

    from tsn_keras.models import TSNConfig, build_tsn, preprocess_input

    length = Manifest.read(records_dir).snippet_length
    config = TSNConfig(
        num_classes=8,
        modality=modality,
        backbone=FLAGS.backbone,
        num_segments=FLAGS.num_segments,
        input_size=FLAGS.input_size,
        snippet_length=length,
        partial_bn=False,
    )
    model = build_tsn(config)
    optimizer = keras.optimizers.SGD(0.001, momentum=0.9)

    @tf.function
    def step(views, labels):
        with tf.GradientTape() as tape:
            x = preprocess_input(views, backbone=FLAGS.backbone, modality=modality)
            logits = model(x, training=True)
            loss = tf.reduce_mean(
                keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
            )
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    ds = input_pipeline.make_dataset(
        records_dir, "train", modality, FLAGS.num_segments, FLAGS.step_batch, training=True,
        input_size=FLAGS.input_size,
    )  # fmt: skip
    feeds = {"pipeline": ds, "memory": ds.take(1).cache().repeat()}
    seconds = {}
    for name, feed in feeds.items():
        it = iter(feed)
        step(*next(it)).numpy()  # trace + warm-up
        times = []
        for _ in range(FLAGS.steps):
            start = time.perf_counter()
            step(*next(it)).numpy()
            times.append(time.perf_counter() - start)
        seconds[name] = sorted(times)[len(times) // 2]
        del it
    return seconds


def main(argv):
    del argv
    with tempfile.TemporaryDirectory() as tmp:
        records_dir = FLAGS.records or write_synthetic_records(tmp, FLAGS.videos)
        rows = [bench(records_dir, m) for m in FLAGS.modalities]
        if FLAGS.train_step:
            for r in rows:
                r["train_step"] = _train_step_seconds(records_dir, r["modality"])
    if FLAGS.json:
        import json

        with open(FLAGS.json, "w") as f:
            json.dump(rows, f)
    print(
        f"\ninput pipeline, K={FLAGS.num_segments}, batch {FLAGS.batch_size}, "
        f"{FLAGS.input_size}px, training augmentation, {os.cpu_count()} CPU cores"
    )
    print(
        f"{'modality':<9} {'clips/s':>9} {'CPU ms/clip':>12} {'bytes read/clip':>16} "
        f"{'JPEG bytes/clip':>16} {'batch MB/s':>11}  batch shape, dtype"
    )
    for r in rows:
        clip_bytes = int(np.prod(r["shape"][1:]))  # uint8
        print(
            f"{r['modality']:<9} {r['clips_per_s']:>9.1f} {r['cpu_ms']:>12.2f} "
            f"{r['bytes_read']:>16,.0f} {r['jpeg_bytes']:>16,.0f} "
            f"{r['clips_per_s'] * clip_bytes / 1e6:>11.1f}  {r['shape']}, uint8"
        )
    print(
        "\nCPU ms per clip by stage, each alone in a tf.data map: read (+CRC), parse, decode "
        "the K sampled snippets cropped to the window, views (flip, resize, round to uint8)"
    )
    print(f"{'modality':<9} {'read':>7} {'parse':>7} {'decode':>7} {'views':>7} {'sum':>7}")
    for r in rows:
        st = r["stages"]
        print(
            f"{r['modality']:<9} {st['read']:>7.2f} {st['parse']:>7.2f} {st['decode']:>7.2f} "
            f"{st['views']:>7.2f} {sum(st.values()):>7.2f}"
        )
    if FLAGS.train_step:
        print(
            f"\ntraining step ({FLAGS.backbone}, {FLAGS.step_batch} clips x K="
            f"{FLAGS.num_segments}), median s: fed by the pipeline vs one batch in memory"
        )
        print(f"{'modality':<9} {'pipeline':>9} {'memory':>9} {'ratio':>7}")
        for r in rows:
            t = r["train_step"]
            print(
                f"{r['modality']:<9} {t['pipeline']:>9.3f} {t['memory']:>9.3f} "
                f"{t['pipeline'] / t['memory']:>7.3f}"
            )


if __name__ == "__main__":
    app.run(main)
