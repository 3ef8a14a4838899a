"""Keras 3 across several workers (``--strategy multi-worker``): who writes the run, and two
scoped workarounds for keras-team/keras#20585."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

from ..runtime.errors import UsageError
from .tf_setup import keras, tf


def work_around_keras_multi_worker(model: keras.Model) -> None:
    """Workaround for keras-team/keras#20585 (tensorflow#72388), part 1: fit()'s "symbolic build".

    Keras 3 all-reduces the first data batch eagerly before fitting, which fails across real
    workers (PerReplica -> Tensor). With no strategy recorded on the model, Keras defers the build
    to the traced train step; fit() then runs inside the strategy's scope, so that step still runs
    under MultiWorkerMirroredStrategy (``Trainer.distribute_strategy`` falls back to the current
    one). Tested with two workers in tests/test_train.py.
    """
    model._distribute_strategy = None


@contextlib.contextmanager
def multi_worker_step_logs(active: bool) -> Iterator[None]:
    """Workaround for keras-team/keras#20585, part 2: step logs across workers.

    Keras 3 reduces every train/test step's logs with ``strategy.reduce("MEAN", v, axis=0)``,
    which fails on scalars. Those logs are results of Keras metrics whose variables are already
    summed over all workers (sync-on-read), so each worker holds the global value: take it as it
    is, as tf.keras 2 did ("first"). Only while fit() runs, only for ``--strategy multi-worker``.
    """
    if not active:
        yield
        return
    tf_trainer = keras.src.backend.tensorflow.trainer  # loaded with keras.Model on this backend

    def first_local(values: object, strategy: tf.distribute.Strategy, reduction: str) -> object:
        def one(v: object) -> object:
            return strategy.experimental_local_results(v)[0] if isinstance(v, tf.distribute.DistributedValues) else v

        return keras.tree.map_structure(one, values)

    original, tf_trainer.reduce_per_replica = tf_trainer.reduce_per_replica, first_local
    try:
        yield
    finally:
        tf_trainer.reduce_per_replica = original


def is_chief(tf_config: str | None) -> bool:
    """The worker that writes the run: task "chief", else worker 0 (TF's convention); no TF_CONFIG = alone.

    Raises:
        UsageError: TF_CONFIG is set but is not the JSON TensorFlow expects.
    """
    if not tf_config:
        return True
    try:
        cfg = json.loads(tf_config)
        kind, index = cfg["task"]["type"], int(cfg["task"]["index"])
        has_chief = "chief" in cfg.get("cluster", {})
    except (ValueError, KeyError, TypeError):
        raise UsageError(
            'TF_CONFIG must be JSON like {"cluster": {"worker": ["host:port", ...]}, '
            '"task": {"type": "worker", "index": 0}}'
        ) from None
    return kind == "chief" or (kind == "worker" and index == 0 and not has_chief)
