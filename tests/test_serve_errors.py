"""The serve errors are mapped once per transport: every status lives in that transport's table.

kserve maps its typed errors to statuses in one place per transport; so does cifar-pack: the core
raises ``errors.ServeError`` kinds, ``http.HTTP_STATUS``/``HTTP_HEADERS`` and ``grpc.GRPC_STATUS``
turn them into the wire's statuses, and nothing else in ``serve/`` names a status.
"""

from __future__ import annotations

import ast
import io
import tokenize
from http import HTTPStatus
from pathlib import Path

import pytest

from cifar_pack.serve import errors

SERVE = Path(__file__).resolve().parents[1] / "cifar_pack" / "serve"
TABLES = {"HTTP_STATUS", "HTTP_HEADERS", "INTERNAL_ERROR", "GRPC_STATUS", "UNEXPECTED"}
STATUSES = {s.value for s in HTTPStatus if s.value >= 200} | {499}


def _table_lines(tree: ast.Module) -> set[int]:
    lines = set()
    for node in tree.body:
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        if any(isinstance(t, ast.Name) and t.id in TABLES for t in targets):
            lines |= set(range(node.lineno, node.end_lineno + 1))
    return lines


@pytest.mark.parametrize("path", sorted(SERVE.glob("*.py")), ids=lambda p: p.name)
def test_no_status_outside_the_transport_tables(path):
    text = path.read_text()
    tables = _table_lines(ast.parse(text))
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        line = token.start[0]
        if token.type == tokenize.NUMBER and token.string.isdigit() and int(token.string) in STATUSES:
            assert line in tables, f"{path.name}:{line}: status {token.string} outside the tables"
        if token.type == tokenize.NAME and token.string == "StatusCode" and line not in tables:
            assert "StatusCode]" in token.line, f"{path.name}:{line}: a gRPC status outside GRPC_STATUS"


def test_one_place_per_transport_catches_serve_errors():
    http = "".join((SERVE / name).read_text() for name in ("http.py", "guard.py", "http_status.py", "connections.py"))
    grpc = (SERVE / "grpc.py").read_text()
    # HTTP: Starlette's exception handler, registered for ServeError; gRPC: the interceptor.
    assert http.count("except errors.ServeError") == 0 and "{errors.ServeError: serve_error" in http
    assert grpc.count("except errors.ServeError") == 1


def test_every_error_kind_has_a_status_on_both_transports():
    pytest.importorskip("grpc", reason="grpcio is in the [serve] extra")
    from cifar_pack.serve.grpc import GRPC_STATUS
    from cifar_pack.serve.http_status import HTTP_STATUS, error_response

    kinds = [k for k in vars(errors).values() if isinstance(k, type) and issubclass(k, errors.ServeError)]
    assert len(kinds) >= 12
    for kind in kinds:
        response = error_response(kind("why"))
        assert 400 <= response.status_code < 600 and response.body == b'{"error":"why"}', kind
        assert errors.status_of(kind("why"), GRPC_STATUS) is not None
    assert error_response(errors.Unauthenticated()).headers["www-authenticate"] == "Bearer"
    assert error_response(errors.RequestTimeout("slow")).headers["connection"] == "close"
    assert error_response(errors.Unavailable("busy")).headers["retry-after"] == "1"
    assert "Bearer <key>" in str(errors.Unauthenticated())  # one message for both transports
    assert {HTTP_STATUS[errors.Unauthenticated], HTTP_STATUS[errors.Forbidden]} == {401, 403}
