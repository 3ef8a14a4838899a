"""One base exception and a few small subclasses.

The CLI turns any ``CifarPackError`` into one plain line on stderr and exit code 1; anything else
is a bug and keeps its traceback. Messages name the file or option and say what is wrong.
"""


class CifarPackError(Exception):
    """Base class for every error a user can cause (bad data, bad model, bad option)."""

    exit_code = 1


class DataError(CifarPackError):
    """A data source is missing, corrupt, hostile or has an unexpected layout."""


class ModelError(CifarPackError):
    """A model file is missing, unreadable, or does not fit the image-classifier contract."""


class ExportError(CifarPackError):
    """Conversion to ONNX or int8 quantization failed."""


class ParityError(ExportError):
    """onnxruntime does not compute what Keras computes (or int8 lost too much accuracy).

    ``report`` holds the measured figures, for ``--json`` output and tests.
    """

    def __init__(self, message: str, report: object = None):
        super().__init__(message)
        self.report = report


class MissingExtraError(CifarPackError):
    """A command needs packages of an extra that this install left out (``cifar-pack[train]``)."""

    # Top-level modules -> the extra that provides them (pyproject.toml's optional-dependencies).
    EXTRAS = {
        "tensorflow": "train",
        "keras": "train",
        "tf2onnx": "train",
        "onnx": "train",
        "matplotlib": "train",
        "starlette": "serve",
        "uvicorn": "serve",
        "prometheus_client": "serve",
        "multipart": "serve",
        "python_multipart": "serve",
    }

    @classmethod
    def from_import(cls, exc: ImportError, command: str) -> "MissingExtraError | None":
        """The one-line error for ``exc`` if an extra would fix it, else None (a real bug)."""
        top = (exc.name or "").split(".")[0]
        extra = cls.EXTRAS.get(top)
        if extra is None:
            return None
        return cls(
            f"`cifar-pack {command}` needs the {extra} extra ({top} is not installed): "
            f"pip install 'cifar-pack[{extra}]'"
        )


class BrokenInstallError(CifarPackError):
    """An installed package is half-removed (e.g. onnxruntime after ``pip uninstall`` of a twin)."""


class InputError(CifarPackError):
    """An image given for inference cannot be read or decoded."""


class UsageError(CifarPackError):
    """An option value is invalid (the CLI reports it as a usage error, exit 2)."""

    exit_code = 2


class Interrupted(CifarPackError):
    """Ctrl-C during a long job; the message says what was kept and how to resume (exit 130)."""

    exit_code = 130
