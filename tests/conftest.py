"""Shared pytest set-up: quiet TensorFlow logs in tests and their subprocesses."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
