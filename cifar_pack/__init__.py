"""cifar-pack: train a Keras CIFAR-style classifier, export it to ONNX, predict with onnxruntime."""

__version__ = "0.1.0"
