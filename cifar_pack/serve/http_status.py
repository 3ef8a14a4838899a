"""HTTP's statuses for the service's errors: the one table, and the one way an error leaves as a response.

Used by the routes and middleware (``http.py``, ``guard.py``) and by the connection layer that
answers before the app (``connections.py``).
"""

from __future__ import annotations

from starlette.responses import JSONResponse

from . import errors

# The service's errors -> HTTP statuses (errors.status_of: the nearest listed base class), and the
# headers some of them carry. Every status this transport sends is in these two tables.
HTTP_STATUS: dict[type[errors.ServeError], int] = {
    errors.ServeError: 400,
    errors.UnsupportedMedia: 415,
    errors.MethodNotAllowed: 405,
    errors.TooLarge: 413,
    errors.HeadTooLarge: 431,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.Unauthenticated: 401,
    errors.Forbidden: 403,
    errors.Unavailable: 503,
    errors.RequestTimeout: 408,
    errors.ClientGone: 499,
}
HTTP_HEADERS: dict[type[errors.ServeError], dict[str, str]] = {
    errors.ServeError: {},
    errors.Unauthenticated: {"WWW-Authenticate": "Bearer"},
    errors.Unavailable: {"Retry-After": "1"},
    # The body never came: the connection must not be kept for another request (a trickling client
    # would hold one of --max-connections for as long as it likes).
    errors.RequestTimeout: {"Connection": "close"},
}
INTERNAL_ERROR = 500  # what Starlette answers an exception no table lists: counted as such in /metrics


def error_response(exc: errors.ServeError) -> JSONResponse:
    """The one way a ``ServeError`` leaves over HTTP: ``{"error": message}`` with its status and headers."""
    headers = errors.status_of(exc, HTTP_HEADERS)
    return JSONResponse({"error": str(exc)}, status_code=errors.status_of(exc, HTTP_STATUS), headers=headers or None)
