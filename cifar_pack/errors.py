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

    def __init__(self, message: str, report=None):
        super().__init__(message)
        self.report = report


class InputError(CifarPackError):
    """An image given for inference cannot be read or decoded."""


class UsageError(CifarPackError):
    """An option value is invalid (the CLI reports it as a usage error, exit 2)."""

    exit_code = 2


class Interrupted(CifarPackError):
    """Ctrl-C during a long job; the message says what was kept and how to resume (exit 130)."""

    exit_code = 130
