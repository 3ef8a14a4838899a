"""The runtime side: what ``pip install cifar-pack`` runs. onnxruntime, numpy and Pillow only.

Nothing in this folder imports TensorFlow, Keras or tf2onnx (an import-linter contract on the
folder, pyproject.toml), so a new module here is covered without editing the contract.

    config.py        the image contract and the runtime's defaults
    errors.py        CifarPackError and its subclasses (each with its CLI exit code)
    fileio.py        atomic writes, sha256, package versions, cache folder
    images.py        any image file, PIL image or array -> (32, 32, 3) uint8 RGB
    inputs.py        which image files an input list names, found lazily, in sorted order
    results.py       results written as they come: .jsonl/.csv files (atomic), a JSON array
    columns.py       predictions as columns, for the Ray Data and Spark adapters
    providers.py     onnxruntime itself: --device names -> execution providers
    predictor.py     Predictor: classify images with an exported .onnx
    onnx_file.py     the one writer and reader of ONNX metadata and its sidecar JSON
    records.py       the training record (a run's manifest, or a model's "training" metadata)
    batching.py      one batched-inference loop and one timing helper
    data/            every data source -> uint8 arrays + labels + class names
    evaluation.py    accuracy, per-class metrics, confusion matrix of any classifier callable
    metrics.py       confusion matrix and its picture
    model_card.py    a Markdown model card from measured results
    sysinfo.py       CPU model and ISA flags for reports
"""
