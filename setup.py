"""tsn_keras: Temporal Segment Networks in TensorFlow 2 / Keras 3.

Dependencies and why each is here:
  tensorflow    tf.data, tf.distribute, SavedModel, TFRecord; the 2.21 line is what we test.
  keras         Keras 3: the model code (BN-Inception, consensus, TSN builder).
  av            PyAV, FFmpeg's Python binding (its wheels ship FFmpeg): the one video decoder
                (tsn_keras/video.py). It decodes as the ffmpeg tools do: a damaged packet is
                skipped and decoding goes on, where OpenCV's VideoCapture stops at it (the
                Theora test clip with one damaged packet of tests/test_decode_files.py: 99
                frames with ffprobe and PyAV, 32 with OpenCV), and it reads a video's declared
                frame count in the same open that decodes it.
  opencv-contrib-python-headless
                resizing, JPEG, video writing (tests, benchmarks) and optical flow; TV-L1 (the
                paper's flow) lives only in the contrib build; headless because servers lack
                the GUI libraries.
  absl-py       command-line flags of every tool (python -m tsn_keras.*).
  tensorboard   training curves and images.
  numpy         array code shared by the converter and tests.
Extras:
  cuda          tensorflow[and-cuda]: the CUDA/cuDNN wheels for GPU training.
  convert       torch, only to read PyTorch .pth state dicts in scripts/convert_weights.py;
                never needed to train or serve.
  dev           pytest and ruff (tests and lint), and fusepy: the tests serve a file whose
                reads never return from a FUSE file system (tests/stuck_fuse.py; needs the
                Debian package fuse3, which scripts/setup_env.sh test installs with ffmpeg,
                whose ffprobe gives the reference frame counts).
  beam          apache-beam, only to convert on a Beam runner (Dataflow, Flink, Spark;
                tsn_keras/beam.py, docs/cluster.md). It holds protobuf below 7 (TensorFlow 2.21
                takes 6.31.1 and up). Dataflow also needs apache-beam[gcp] where the job is
                launched.
  jax           jax[cpu]: Keras 3's JAX backend, to run TSN models in JAX programs and for the
                cross-backend test (tests/test_backends.py); the CPU wheels, no CUDA download.
  litert        ai-edge-litert: the LiteRT interpreter that runs and checks the .tflite files of
                `python -m tsn_keras.export --tflite` (tf.lite.Interpreter is deprecated); needs
                no TensorFlow on the device.
Lower bounds are the versions we tested with.
"""

from setuptools import find_packages, setup

setup(
    name="tsn_keras",
    version="0.1.0",
    description="Temporal Segment Networks for video action recognition in TensorFlow 2 / Keras 3",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["tsn_keras", "tsn_keras.*"]),
    python_requires=">=3.10",
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "keras>=3.15",
        "av>=18.1",
        "opencv-contrib-python-headless>=4.10",
        "absl-py>=2.1",
        "tensorboard>=2.21",
        "numpy>=1.26",
    ],
    # The same commands as `python -m tsn_keras.X` (and scripts/make_tfrecords.py).
    entry_points={
        "console_scripts": [
            "tsn-convert=tsn_keras.convert.command:main",
            "tsn-splits=tsn_keras.splits.command:main",
            "tsn-check-videos=tsn_keras.check_videos:main",
            "tsn-synthetic=tsn_keras.synthetic:main",
            "tsn-train=tsn_keras.train:main",
            "tsn-evaluate=tsn_keras.evaluate:main",
            "tsn-fuse=tsn_keras.fuse:main",
            "tsn-export=tsn_keras.export:main",
            "tsn-predict=tsn_keras.predict:main",
        ]
    },
    extras_require={
        "cuda": ["tensorflow[and-cuda]>=2.21,<2.22"],
        "convert": ["torch>=2.13"],
        "dev": ["pytest>=8", "ruff>=0.6", "fusepy>=3.0.1"],
        "beam": ["apache-beam>=2.77"],
        "jax": ["jax[cpu]>=0.10"],
        "litert": ["ai-edge-litert>=2.3"],
    },
)
