"""cifar-pack: train a Keras CIFAR-style classifier, export it to ONNX, predict with onnxruntime.

Only the runtime is imported here: ``from cifar_pack import Predictor`` never loads TensorFlow.
"""

from typing import TYPE_CHECKING

__all__ = ["Predictor", "__version__"]


if TYPE_CHECKING:  # what the lazy attributes below return, for type checkers and editors
    from .runtime.predictor import Predictor

    __version__: str


def __getattr__(name: str) -> object:
    # Lazy, so that `import cifar_pack` (and the CLI's start-up) costs nothing until needed.
    if name == "Predictor":
        from .runtime.predictor import Predictor

        return Predictor
    if name == "__version__":
        # pyproject.toml's, the one place the version is written (importlib.metadata costs ~15 ms)
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("cifar-pack")
        except PackageNotFoundError:  # a source tree used without installing it
            return "0+unknown"
    raise AttributeError(f"module 'cifar_pack' has no attribute {name!r}")
