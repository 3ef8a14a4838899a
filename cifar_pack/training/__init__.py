"""The training side: the ``[train]`` extra (TensorFlow with Keras 3, tf2onnx, onnx, matplotlib).

TensorFlow and Keras are imported only through ``tf_setup`` (an import-linter contract), and this
package imports nothing at import time, so the command line reads ``config`` cheaply.

    config.py          recipes, export and int8 defaults, the command line's choices (Enums)
    tf_setup.py        the one importer of TensorFlow and Keras (oneDNN on, quiet start-up)
    model.py           the seed CNN; loading, checking and serving saved Keras classifiers
    pipeline.py        precision, strategy, optimizer, augmentation layers, tf.data pipeline, curves
    checkpoints.py     per-epoch checkpoints and the run state, exact resume
    multi_worker.py    several workers: who writes the run, Keras 3 workarounds
    train.py           one training run, top to bottom
    export.py          tf2onnx conversion, metadata, then the parity gate
    parity.py          Keras vs onnxruntime at two batch sizes (takes a callable; no TensorFlow)
    quantize.py        int8 with onnxruntime.quantization, measured and gated (no TensorFlow)
    benchmark.py       Keras vs ONNX float32 vs int8 on one machine
    augment_preview.py a PNG grid of augmented samples
"""
