"""LiteRT against Keras on the CPU: `python bench/litert.py [--formats ...] [--json FILE]`.

    python bench/litert.py                       # BN-Inception 224, random weights (seeded)
    python bench/litert.py --model_dir runs/rgb --records tfrecords/ucf101_split1
                                                 # a trained run: adds accuracy per format

Converts the TSN model to each `.tflite` format (`tsn_keras.export.convert_tflite`, the
export's own code) and prints, per format: the file's MB, ms per snippet (one [1, 1, S, S, C]
view per call, median) with 1 interpreter thread and with all cores, the largest |probability
difference| from the Keras model and the top-1 agreement with it on --snippets random
snippets. The Keras row is the model's compiled call (tf.function) with TensorFlow's default
threads (all cores). With --model_dir and --records, each format also scores the records'
test split with evaluate's code (--num_segments snippets x --crops crops per video) and its
top-1 and mean class accuracy are printed beside the Keras model's.

int8_full is calibrated on --calibration views: the records' training videos when --records
is given, else random snippets (enough for timing, not for accuracy).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # run from a checkout without installing


def _median_ms(fn, x, iters: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn(x)
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="bn_inception")
    parser.add_argument("--input_size", type=int, default=224)
    parser.add_argument("--formats", default="fp32,fp16,int8_dynamic,int8_full")
    parser.add_argument("--snippets", type=int, default=8, help="Random snippets compared.")
    parser.add_argument("--iters", type=int, default=20, help="Timed calls per setting.")
    parser.add_argument("--calibration", type=int, default=32, help="int8_full calibration views.")
    parser.add_argument(
        "--model_dir", default=None, help="A trained run instead of random weights."
    )
    parser.add_argument(
        "--records", default=None, help="With --model_dir: accuracy on its test split."
    )
    parser.add_argument("--num_segments", type=int, default=25)
    parser.add_argument("--crops", type=int, default=1, choices=[1, 3, 10])
    parser.add_argument("--json", default=None, help="Also write the rows here.")
    args = parser.parse_args(argv)
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    if args.records and not args.model_dir:
        parser.error("--records needs --model_dir (accuracy of a trained model)")

    import keras
    import numpy as np
    import tensorflow as tf

    from tsn_keras import export, litert, modalities, scoring
    from tsn_keras.models import TSNConfig, build_tsn, preprocess_input

    if args.model_dir:
        model, config, classes, data = export.restore_from_model_dir(args.model_dir)
        conversion = data.get("conversion")
        source = f"run {args.model_dir}"
    else:
        config = TSNConfig(
            num_classes=101, modality="rgb", backbone=args.backbone, input_size=args.input_size,
            num_segments=1, dropout=0.5, partial_bn=False,
        )  # fmt: skip
        keras.utils.set_random_seed(0)
        model = build_tsn(config)
        classes, conversion = [f"class{i}" for i in range(101)], None
        source = "random weights (seed 0)"
    s, c = config.input_size, modalities.stored_channels(config.modality, config.snippet_length)
    rng = np.random.default_rng(0)
    snippets = rng.integers(0, 256, (args.snippets, 1, 1, s, s, c), np.uint8)  # [N, 1, 1, S, S, C]
    if args.records:
        calibration = export.calibration_views(args.records, config, args.calibration)
    else:
        calibration = [
            rng.integers(0, 256, (1, 1, s, s, c), np.uint8) for _ in range(args.calibration)
        ]

    @tf.function(reduce_retracing=True)
    def keras_call(x):
        x = preprocess_input(x, backbone=config.backbone, modality=config.modality)
        return tf.nn.softmax(tf.cast(model(x, training=False), tf.float32), axis=-1)

    want = np.concatenate([keras_call(x).numpy() for x in snippets])  # [N, classes]
    keras_ms = _median_ms(keras_call, tf.constant(snippets[0]), args.iters)
    cores = os.cpu_count() or 1
    print(
        f"{config.backbone} {s}x{s} {config.modality}, {source}; {cores} cores, load average "
        f"{os.getloadavg()[0]:.1f}; tensorflow {tf.__version__}, keras {keras.__version__}",
        flush=True,
    )
    rows = [
        {"format": "keras", "mb": None, "ms_1": None, "ms_all": keras_ms, "diff": 0.0, "agree": 1.0}
    ]
    reference = None
    if args.records:
        ref_scorer = scoring.load_scorer(args.model_dir)
        reference = scoring.evaluate(
            ref_scorer, args.records, "test", args.num_segments, args.crops, verbose=False
        )
        rows[0]["top1"] = reference["summary"]["top1"]
        rows[0]["mean_class"] = reference["summary"]["mean_class_accuracy"]
    with tempfile.TemporaryDirectory() as work:
        for fmt in formats:
            start = time.perf_counter()
            data = export.convert_tflite(model, config, fmt, calibration)
            meta = export.export_meta(config, classes, conversion=conversion)
            data = litert.add_metadata(data, {**meta, "format": fmt})
            convert_s = time.perf_counter() - start
            path = export.tflite_path(work, fmt)
            with open(path, "wb") as f:
                f.write(data)
            row = {"format": fmt, "mb": len(data) / 1e6, "convert_s": convert_s}
            for key, threads in (("ms_1", 1), ("ms_all", cores)):
                lite = litert.LiteRTModel(path, num_threads=threads)
                row[key] = _median_ms(lite, snippets[0], args.iters)
                row["delegate"] = lite.delegate
            got = np.concatenate([lite(x)["probabilities"] for x in snippets])
            row["diff"] = float(np.max(np.abs(got - want)))
            row["agree"] = float(np.mean(got.argmax(1) == want.argmax(1)))
            if reference is not None:
                scorer = scoring.load_tflite_scorer(path, num_threads=cores)
                result = scoring.evaluate(
                    scorer, args.records, "test", args.num_segments, args.crops, verbose=False
                )
                row["top1"] = result["summary"]["top1"]
                row["mean_class"] = result["summary"]["mean_class_accuracy"]
                row["agree_videos"] = scoring.compare(result, reference)["top1_agreement"]
            rows.append(row)
            print(f"  {fmt}: converted in {convert_s:.0f} s", flush=True)

    def cell(v, f):
        return "-" if v is None else f.format(v)

    all_cores = f"ms/snippet {cores} cores"
    header = f"{'format':<13} {'MB':>7} {'ms/snippet 1 thread':>20} {all_cores:>20}"
    header += f" {'max |dp|':>9} {'top-1 agree':>11}"
    if reference is not None:
        header += f" {'top-1':>7} {'mean class':>10}"
    print(header)
    for r in rows:
        line = (
            f"{r['format']:<13} {cell(r['mb'], '{:.2f}'):>7} {cell(r['ms_1'], '{:.2f}'):>20} "
            f"{cell(r['ms_all'], '{:.2f}'):>20} {r['diff']:>9.1e} {100 * r['agree']:>10.0f}%"
        )
        if reference is not None:
            line += f" {100 * r['top1']:>6.2f}% {100 * r['mean_class']:>9.2f}%"
        if r.get("delegate") == "none":
            line += "  (XNNPACK could not prepare it: built-in kernels)"
        print(line)
    note = f"{args.snippets} random snippets compared with Keras; median of {args.iters} calls"
    if reference is not None:
        videos = len(reference["video_ids"])
        note += (
            f"; accuracy on {videos} test videos, {args.num_segments} snippets x {args.crops} crops"
        )
    print(note)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cores": cores, "backbone": config.backbone, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
