"""The service's typed errors: what went wrong, in no transport's words (kserve's ``errors.py``).

The core and the request parsers raise these; each transport maps the class to its own status
once (``http.HTTP_STATUS``, ``grpc.GRPC_STATUS``), looking the class up along its bases, so a
new error kind is a subclass here plus one line per transport.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

Status = TypeVar("Status")


class ServeError(ValueError):
    """A request the service does not serve; the message is one line for the client."""


class InvalidInput(ServeError):
    """A malformed request: wrong JSON, tensor name, shape, type or value (HTTP 400)."""


class UnsupportedMedia(InvalidInput):
    """An unsupported Content-Type, or no uploaded file is a readable image (HTTP 415)."""


class TooLarge(ServeError):
    """Over a limit: body bytes, images in one request, decoded pixels (HTTP 413)."""


class NotFound(ServeError):
    """No such model, version, model folder or page file (HTTP 404)."""


class Conflict(ServeError):
    """Refused in the server's present state, such as the --max-models cap (HTTP 409)."""


class Unavailable(ServeError):
    """Busy or shutting down: retry later (HTTP 503)."""


class RequestTimeout(ServeError):
    """The request did not arrive in time (HTTP 408)."""


class ClientGone(ServeError):
    """The client disconnected before the answer (nginx's 499: nobody reads it)."""


def status_of(exc: ServeError, table: Mapping[type[ServeError], Status]) -> Status:
    """``table``'s entry for ``exc``'s class or its nearest base listed there."""
    for cls in type(exc).__mro__:
        if cls in table:
            return table[cls]
    return table[ServeError]
