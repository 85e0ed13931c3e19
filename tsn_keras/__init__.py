"""Temporal Segment Networks (Wang et al., ECCV 2016) in TensorFlow 2 / Keras 3."""

from tsn_keras import cli

__version__ = "0.1.0"

# A command (`python -m tsn_keras.X`, `tsn-*`) hides TensorFlow's start-up lines (CUDA stubs,
# CPU features) unless --verbose; this must happen before TensorFlow loads, and every command
# module imports this package first. Library users' programs are left alone.
if cli.is_command_line():
    cli.quiet_native_logs()
