"""Connections and request heads, bounded before any request reaches the app (or its API key).

uvicorn's httptools protocol, which the server uses for its speed (about 2x h11's requests/s),
has no bound on a request head and no timeout for a connection that never completes one: a 64 MB
header line was accepted after 5 s (and cost grows quadratically), and 1,000 idle or slowloris
connections stayed open for good, shutting everyone out at the descriptor limit.
``BoundedHttpTools`` adds, per connection:

- a head limit: a request whose head (request line and headers) passes ``MAX_HEAD_BYTES`` or
  ``MAX_HEADERS`` fields gets ``errors.HeadTooLarge``'s status and the connection is closed;
- a head timeout: a connection that has not completed a request head ``HEAD_TIMEOUT_S`` after it
  opened (or after its previous response) is closed: idle and slowloris connections go;
- a connection cap: past ``max_connections`` open connections, a new one is closed at once;
- malformed requests logged at DEBUG, not WARNING (5,000 of them wrote 205 KB of log in 0.8 s).

Idle keep-alive connections between requests are closed by uvicorn's own ``timeout_keep_alive``.
"""

from __future__ import annotations

import asyncio
import json
from http import HTTPStatus
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from . import errors
from .config import HEAD_TIMEOUT_S, MAX_CONNECTIONS, MAX_HEAD_BYTES, MAX_HEADERS
from .http_status import HTTP_STATUS


class BoundedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with a head limit, a head timeout and a connection cap."""

    max_connections = MAX_CONNECTIONS

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # Bytes of the head being received; None between a complete head and the next request's
        # first byte (on_message_begin), when uvicorn's keep-alive timer watches the connection.
        self.head_bytes: int | None = 0
        self.header_count = self.field_bytes = 0
        self.head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            transport.abort()  # no answer: every byte spent here is the attacker's win
            return
        self.arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self.cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.logger.debug("invalid HTTP request received")
            self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self.head_bytes is not None and not self.transport.is_closing():
            self.head_bytes += len(data)
            if self.head_bytes > MAX_HEAD_BYTES or self.header_count > MAX_HEADERS:
                self.refuse_head()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.begin_head()

    def on_url(self, url: bytes) -> None:
        self.field_bytes += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        # A head that arrives in one read is parsed whole before data_received can count it:
        # its fields are counted here too.
        self.header_count += 1
        self.field_bytes += len(name) + len(value)
        if self.header_count <= MAX_HEADERS:
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        too_large = self.header_count > MAX_HEADERS or self.field_bytes > MAX_HEAD_BYTES
        self.head_bytes = None
        self.cancel_head_timer()
        if too_large:
            self.refuse_head()
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self.transport.is_closing():  # after a refused head nothing more is read
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self.transport.is_closing():
            super().on_message_complete()

    def begin_head(self) -> None:
        if self.head_bytes is None:
            self.head_bytes, self.header_count, self.field_bytes = 0, 0, 0
            self.arm_head_timer()

    def arm_head_timer(self) -> None:
        self.cancel_head_timer()
        self.head_timer = self.loop.call_later(HEAD_TIMEOUT_S, self.head_timed_out)

    def cancel_head_timer(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def head_timed_out(self) -> None:
        if self.head_bytes is not None and not self.transport.is_closing():
            self.transport.close()

    def refuse_head(self) -> None:
        """HeadTooLarge's answer, then close: nothing of the head reaches the app, so it is written here."""
        self.cancel_head_timer()
        refused = errors.HeadTooLarge(
            f"request head too large: at most {MAX_HEAD_BYTES} bytes and {MAX_HEADERS} header fields"
        )
        status = HTTP_STATUS[errors.HeadTooLarge]
        body = json.dumps({"error": str(refused)}).encode()
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\n" % (status, HTTPStatus(status).phrase.encode())
            + b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
        )
        self.transport.close()
