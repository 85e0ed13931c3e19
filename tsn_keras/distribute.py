"""Distribution set-up of a training run: which strategy, which worker is the chief.

    mirrored      all local GPUs, else all (logical) CPUs of this machine
    multi_worker  MultiWorkerMirroredStrategy over the cluster in TF_CONFIG
    one_device    the first GPU, else the CPU

Keras 3's `Model.fit` fails under MultiWorkerMirroredStrategy (keras-team/keras#20585, see
docs/design.md), so one custom loop (tsn_keras/train.py) serves all three.
"""

from __future__ import annotations

import tensorflow as tf


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The strategy named by --strategy (see the module docstring)."""
    if name == "multi_worker":  # must come before anything initialises the TF runtime
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
    return tf.distribute.MirroredStrategy(devices)


def split_cpu(num_devices: int) -> None:
    """Splits the physical CPU into `num_devices` logical devices. Must run before TF starts."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(num_devices)]
    )


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's files (always, outside a cluster)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "chief" or (
        not has_chief and resolver.task_type == "worker" and resolver.task_id == 0
    )


def num_workers(strategy: tf.distribute.Strategy) -> int:
    """Workers (= input pipelines of distribute_datasets_from_function) in the cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return 1
    spec = resolver.cluster_spec().as_dict()
    return max(len(spec.get("worker", [])) + len(spec.get("chief", [])), 1)


def task_id(strategy: tf.distribute.Strategy) -> int:
    """This worker's index in the cluster (0 outside one)."""
    return getattr(getattr(strategy, "cluster_resolver", None), "task_id", 0) or 0
