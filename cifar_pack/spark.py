"""Apache Spark batch inference with a cifar-pack model, on Spark's own ``predict_batch_udf``.

>>> from pyspark.sql import SparkSession
>>> from cifar_pack.spark import classify_udf
>>> spark = SparkSession.builder.master("local[2]").getOrCreate()
>>> files = spark.read.format("binaryFile").load("photos/")
>>> files.select("path", classify_udf(model="model.onnx")("content").alias("prediction")).show()

``predict_batch_udf`` loads the model once per Python worker and feeds it Arrow batches; each
batch's files are decoded with ``cifar-pack predict``'s decoder and resize, so the labels are the
CLI's on the same files. onnxruntime gets as many threads as the task's CPUs
(``spark.task.cpus``, 1 by default), not the machine's cores: Spark already runs one task per core.
The ``[spark]`` extra (PySpark, pandas, pyarrow; Spark needs a Java runtime).

On a cluster, ship the model with the job as Spark ships files, and name it by its file name:
``spark-submit --files model.onnx job.py`` (or ``spark.sparkContext.addFile("model.onnx")``) and
``classify_udf(model="model.onnx")``: each executor opens its own copy (``SparkFiles.get``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from .runtime.columns import classify_columns, decode_all
from .runtime.config import DEFAULT_BATCH_SIZE, DEFAULT_ENGINE, DEFAULT_PRECISION
from .runtime.engines import EngineSettings, sharing_cores
from .runtime.predictor import Predictor

if TYPE_CHECKING:
    from pyspark.sql.types import StructType

PredictFn = Callable[[np.ndarray], dict[str, np.ndarray]]


def result_type(top_k: int = 1) -> StructType:
    """The struct each row gets: label, probability, error (null unless the file was unreadable), and
    with ``top_k`` > 1 the ranked ``top_k_labels`` and ``top_k_probabilities`` (``predict_batch_udf``
    takes arrays of scalars in a struct, not arrays of structs)."""
    from pyspark.sql.types import ArrayType, FloatType, StringType, StructField, StructType

    fields = [
        StructField("label", StringType(), True),
        StructField("probability", FloatType(), True),
        StructField("error", StringType(), True),
    ]
    if top_k > 1:
        fields.append(StructField("top_k_labels", ArrayType(StringType()), True))
        fields.append(StructField("top_k_probabilities", ArrayType(FloatType()), True))
    return StructType(fields)


def classify_udf(
    model: str | os.PathLike | None = None,
    top_k: int = 1,
    batch_size: int = DEFAULT_BATCH_SIZE,
    engine: str = DEFAULT_ENGINE,
    precision: str = DEFAULT_PRECISION,
) -> Callable:
    """A column function: the ``content`` (bytes) of ``binaryFile`` rows -> ``result_type(top_k)``.

    Args:
        model: an exported ``.onnx``: a path every executor can read, or the file name of a model
            shipped with the job (``--files``/``addFile``; ``shipped_path``); default: the model
            ``cifar-pack predict`` uses, e.g. the bundled one.
        top_k: with K > 1, a ``top_k`` array of the K best ``{label, probability}``.
        batch_size: images per engine call (``predict_batch_udf``'s batch size).
        engine, precision: as for ``Predictor`` (``engine="openvino"`` with the ``[openvino]`` extra
            on the workers).
    """
    from pyspark.ml.functions import predict_batch_udf

    path = None if model is None else os.fspath(model)
    settings = sharing_cores(
        EngineSettings.of(engine, precision, device="cpu")
    )  # checked here, on the driver, before any task
    return predict_batch_udf(
        lambda: make_predict_fn(path, top_k, settings), return_type=result_type(top_k), batch_size=batch_size
    )


def task_cpus() -> int:
    """The CPUs Spark gives this task (``spark.task.cpus``); 1 outside a task."""
    from pyspark import TaskContext

    context = TaskContext.get()
    return max(1, int(context.cpus())) if context is not None else 1


def shipped_path(model: str | None) -> str | None:
    """``model`` where it names a file shipped with the job (a bare file name that ``SparkFiles``
    holds on this executor: its own copy), else ``model`` as given."""
    if model is None or os.path.dirname(model):
        return model
    from pyspark import SparkFiles

    try:
        shipped = SparkFiles.get(model)
    except Exception:  # no SparkContext or executor here (e.g. a plain Python test): not shipped
        return model
    return shipped if os.path.isfile(shipped) else model


def make_predict_fn(
    model: str | None, top_k: int, settings: EngineSettings = EngineSettings(device="cpu")
) -> PredictFn:
    """Runs once per Python worker: one loaded model (on the task's CPUs), then one call per Arrow batch."""
    predictor = Predictor(shipped_path(model), settings=replace(settings, threads=task_cpus()))
    return lambda contents: classify_columns(predictor, decode_all(predictor, contents), top_k)
