"""The Triton model repository, whole: its layout, the writer (``export --triton``), the loader
(``serve --model-repository``) and ``Repository``. The same folder runs on NVIDIA Triton Inference
Server and on KServe. No TensorFlow, and nothing of the server's ASGI stack.
"""

from .layout import LABELS_FILE, MODEL_FILE, model_name, name_problem, versions
from .loader import Repository, load_models, load_one, load_repository, repository_names, without_root
from .triton import config_pbtxt, triton_config
from .writer import write_repository

__all__ = [
    "LABELS_FILE",
    "MODEL_FILE",
    "Repository",
    "config_pbtxt",
    "load_models",
    "load_one",
    "load_repository",
    "model_name",
    "name_problem",
    "repository_names",
    "triton_config",
    "versions",
    "without_root",
    "write_repository",
]
