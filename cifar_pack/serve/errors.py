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
    """A malformed request: wrong JSON, tensor name, shape, type or value, a malformed Host header."""


class UnsupportedMedia(InvalidInput):
    """An unsupported Content-Type, or no uploaded file is a readable image."""


class MethodNotAllowed(InvalidInput):
    """A route that exists, asked with a method it does not take."""


class TooLarge(ServeError):
    """Over a limit: body bytes, images in one request, decoded pixels."""


class HeadTooLarge(TooLarge):
    """A request head (the request line and header fields) over its limit; the connection closes."""


class NotFound(ServeError):
    """No such model, version, model folder, route or page file."""


class Conflict(ServeError):
    """Refused in the server's present state, such as the --max-models cap."""


class Unauthenticated(ServeError):
    """No API key, or a wrong one, where the server requires one."""

    # HTTP header names are case-insensitive; gRPC metadata keys are lower case: one spelling serves both.
    def __init__(self, message: str = "missing or wrong API key: send 'authorization: Bearer <key>'"):
        super().__init__(message)


class Forbidden(ServeError):
    """Refused whoever asks: a Host name this server does not answer to, a cross-origin POST."""


class Unavailable(ServeError):
    """Busy or shutting down: retry later."""


class RequestTimeout(ServeError):
    """The request did not arrive in time."""


class ClientGone(ServeError):
    """The client disconnected before the answer (nobody reads the status)."""


def status_of(exc: ServeError, table: Mapping[type[ServeError], Status]) -> Status:
    """``table``'s entry for ``exc``'s class or its nearest base listed there."""
    for cls in type(exc).__mro__:
        if cls in table:
            return table[cls]
    return table[ServeError]
