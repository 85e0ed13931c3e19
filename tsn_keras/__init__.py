"""Temporal Segment Networks (Wang et al., ECCV 2016) in TensorFlow 2 / Keras 3."""

__version__ = "0.1.0"
