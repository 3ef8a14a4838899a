"""cifar-pack: train a Keras CIFAR-style classifier, export it to ONNX, predict with onnxruntime.

Only the runtime is imported here: ``from cifar_pack import Predictor`` never loads TensorFlow.
"""

from typing import TYPE_CHECKING

__version__ = "0.1.0"
__all__ = ["Predictor", "__version__"]


if TYPE_CHECKING:  # what the lazy attribute below returns, for type checkers and editors
    from .runtime.predictor import Predictor


def __getattr__(name: str) -> object:
    # Lazy, so that `import cifar_pack` (and the CLI's start-up) costs nothing until needed.
    if name == "Predictor":
        from .runtime.predictor import Predictor

        return Predictor
    raise AttributeError(f"module 'cifar_pack' has no attribute {name!r}")
