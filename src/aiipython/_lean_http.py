"""A lean keep-alive HTTP/1.1 client for the sync model calls to a gateway on loopback (``http://``).

``PiGatewayClient.complete`` and ``stream`` are one POST each to a loopback gateway, where the
client's own CPU is a large part of the call: httpx + httpcore + h11 take about 0.2-0.4 ms more
per call than the standard library's ``http.client`` (docs/benchmarks.md, the hop). This module
sends the request head and body in one ``sendall`` over a pooled socket (``TCP_NODELAY``) and reads
the reply with ``http.client.HTTPResponse`` (status line, headers, content-length and chunked
bodies). The async API and every other route keep httpx.

Failures are raised as the httpx exceptions httpx would raise for the same event, with the OS
error as ``__cause__``, so ``PiGatewayClient``'s one translation and the resend rule
(``_resend.not_delivered``) apply unchanged: connect failures are ``httpx.ConnectError``, a reset
while sending or before any response byte ``httpx.WriteError``/``httpx.ReadError``, an EOF before
the status line ``httpx.RemoteProtocolError`` (the gateway may have read the call: never resent),
timeouts ``httpx.ConnectTimeout``/``httpx.ReadTimeout``.
"""

from __future__ import annotations

import http.client
import json
import select
import socket
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx

__all__ = ["LeanPool", "LeanResponse"]

_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})

#: Idle connections kept per gateway address.
MAX_IDLE = 64
_READ_SIZE = 65536


class _Headers(dict[str, str]):
    """Response headers by lower-case name (the last value of a repeated header)."""


class LeanResponse:
    """The reply to one :meth:`LeanPool.post`: status, headers, then the body (read or streamed).

    The connection goes back to the pool once the body has been read to its end; closing the
    response earlier closes the connection (for a stream, that aborts the gateway's upstream call).
    """

    def __init__(self, pool: LeanPool, key: tuple[str, int], sock: socket.socket,
                 raw: http.client.HTTPResponse, path: str) -> None:
        self._pool, self._key, self._sock, self._raw = pool, key, sock, raw
        self.path = path
        self.status_code: int = raw.status
        self.headers = _Headers((k.lower(), v) for k, v in raw.getheaders())
        self._content: bytes | None = None
        self._done = False

    def _finish(self) -> None:
        if self._done:
            return
        self._done = True
        if self._raw.isclosed() and not self._raw.will_close:
            self._pool._release(self._key, self._sock)
        else:
            self._raw.close()
            self._sock.close()

    def read(self) -> bytes:
        """The whole body (``httpx.ReadError``/``ReadTimeout`` when the connection fails)."""
        if self._content is None:
            try:
                self._content = self._raw.read()
            except (OSError, http.client.HTTPException) as exc:
                self._done = True
                self._sock.close()
                raise _read_error(exc) from exc
            self._finish()
        return self._content

    @property
    def content(self) -> bytes:
        return self.read()

    def json(self) -> Any:
        return json.loads(self.read())

    def iter_raw(self) -> Iterator[bytes]:
        """Body chunks as they arrive (at most 64 KiB each)."""
        while True:
            try:
                chunk = self._raw.read1(_READ_SIZE)
            except (OSError, http.client.HTTPException) as exc:
                self._done = True
                self._sock.close()
                raise _read_error(exc) from exc
            if not chunk:
                self._finish()
                return
            yield chunk

    def close(self) -> None:
        """Give the connection back when the body was read to its end; else close it."""
        if not self._done:
            if self._raw.isclosed():
                self._finish()
            else:
                self._done = True
                self._raw.close()
                self._sock.close()


def _read_error(exc: BaseException) -> httpx.TransportError:
    if isinstance(exc, TimeoutError):
        return httpx.ReadTimeout(str(exc) or "timed out")
    if isinstance(exc, http.client.RemoteDisconnected):  # an EOF (FIN), though a ConnectionResetError subclass
        return httpx.RemoteProtocolError(str(exc) or "the server closed the connection without a response")
    if isinstance(exc, http.client.HTTPException):
        return httpx.RemoteProtocolError(str(exc) or type(exc).__name__)
    return httpx.ReadError(str(exc) or type(exc).__name__)


class LeanPool:
    """Keep-alive sockets per gateway address, shared by threads (a lock around the idle lists)."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, int], list[socket.socket]] = {}
        self._lock = threading.Lock()
        self._bases: dict[str, tuple[tuple[str, int], str, str]] = {}
        self._closed = False

    @staticmethod
    def usable(base_url: str) -> bool:
        """True for a plain ``http://`` URL on a loopback host (TLS, proxies and remote hosts stay httpx's)."""
        if not base_url.startswith("http://"):
            return False
        return urlsplit(base_url).hostname in _LOOPBACK

    def _base(self, base_url: str) -> tuple[tuple[str, int], str, str]:
        found = self._bases.get(base_url)
        if found is None:
            parts = urlsplit(base_url)
            host, port = parts.hostname or "127.0.0.1", parts.port or 80
            netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            found = self._bases[base_url] = ((host, port), netloc, parts.path.rstrip("/"))
        return found

    def _checkout(self, key: tuple[str, int], connect_timeout: float) -> socket.socket:
        with self._lock:
            idle = self._idle.get(key)
            while idle:
                sock = idle.pop()
                # A readable idle socket is at EOF (the gateway closed it) or out of sync: drop it.
                try:
                    readable = bool(select.select([sock], [], [], 0)[0])
                except (OSError, ValueError):
                    readable = True
                if not readable:
                    return sock
                sock.close()
        try:
            sock = socket.create_connection(key, timeout=connect_timeout)
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc) or "timed out") from exc
        except OSError as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _release(self, key: tuple[str, int], sock: socket.socket) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if self._closed or len(idle) >= MAX_IDLE:
                sock.close()
            else:
                idle.append(sock)

    def post(self, base_url: str, path: str, body: bytes, token: str, *, connect_timeout: float,
             read_timeout: float | None) -> LeanResponse:
        """POST ``body`` (JSON) to ``base_url + path`` and return once the status and headers arrived."""
        key, netloc, prefix = self._base(base_url)
        sock = self._checkout(key, connect_timeout)
        head = (f"POST {prefix}{path} HTTP/1.1\r\nHost: {netloc}\r\nAccept: */*\r\n"
                f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1")
        try:
            sock.settimeout(read_timeout)
            sock.sendall(head + body)
        except TimeoutError as exc:
            sock.close()
            raise httpx.WriteTimeout(str(exc) or "timed out") from exc
        except OSError as exc:
            sock.close()
            raise httpx.WriteError(str(exc) or type(exc).__name__) from exc
        raw = http.client.HTTPResponse(sock, method="POST")
        try:
            raw.begin()
        except (OSError, http.client.HTTPException) as exc:
            raw.close()
            sock.close()
            raise _read_error(exc) from exc
        return LeanResponse(self, key, sock, raw, path)

    def close(self) -> None:
        """Close every idle socket; sockets of responses still open close when they finish."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, {}
        for socks in idle.values():
            for sock in socks:
                sock.close()
