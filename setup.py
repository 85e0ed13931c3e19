"""tsn_keras: Temporal Segment Networks in TensorFlow 2 / Keras 3.

Dependencies and why each is here:
  tensorflow    tf.data, tf.distribute, SavedModel, TFRecord; the 2.21 line is what we test.
  keras         Keras 3: the model code (BN-Inception, consensus, TSN builder).
  opencv-contrib-python-headless
                video decoding/encoding and optical flow; TV-L1 (the paper's flow) lives only in
                the contrib build; headless because servers lack the GUI libraries.
  absl-py       command-line flags of every tool (python -m tsn_keras.*).
  tensorboard   training curves and images.
  numpy         array code shared by the converter and tests.
Extras:
  cuda          tensorflow[and-cuda]: the CUDA/cuDNN wheels for GPU training.
  convert       torch, only to read PyTorch .pth state dicts in scripts/convert_weights.py;
                never needed to train or serve.
  dev           pytest and ruff (tests and lint).
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
        "opencv-contrib-python-headless>=4.10",
        "absl-py>=2.1",
        "tensorboard>=2.21",
        "numpy>=1.26",
    ],
    extras_require={
        "cuda": ["tensorflow[and-cuda]>=2.21,<2.22"],
        "convert": ["torch>=2.13"],
        "dev": ["pytest>=8", "ruff>=0.6"],
        # a second Keras backend: tests run tsn_keras.tvl1 (keras.ops only) under
        # KERAS_BACKEND=jax and compare with TensorFlow; GPU machines run its bench there
        "jax": ["jax[cpu]>=0.4"],
    },
)
