"""httpx transports that send each request to the gateway in one socket write.

httpx (through httpcore and h11) writes a request's head and its body with two ``send`` calls.
With ``TCP_NODELAY`` (which the client needs, or Nagle holds the body back for the peer's
delayed ACK) each becomes its own packet on loopback: the gateway's event loop wakes up for the
head, parses it, sleeps, and wakes again for the body. On a busy 2-core machine that second
wake-up costs more than the rest of the client (docs/benchmarks.md). Here the writes made before
the next read are joined and sent at once, when the client starts reading the response, or as
soon as ``FLUSH_BYTES`` are buffered (large bodies stream as before).

A write error now surfaces from the read that flushes it, as the same httpcore ``WriteError``
(``_resend.not_delivered`` sees the same cause), so a call is still sent again only when it
provably never reached the gateway.
"""

from __future__ import annotations

import typing

import httpcore
import httpx

__all__ = ["FLUSH_BYTES", "coalescing_transport", "coalescing_async_transport"]

#: Bytes buffered at most before they are written without waiting for the read.
FLUSH_BYTES = 64 * 1024

#: httpcore's socket option shape (``socket.setsockopt`` arguments).
_SocketOption = tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner
        self._pending: list[bytes] = []
        self._size = 0

    def _flush(self, timeout: float | None) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            self._size = 0
            self._inner.write(data, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if buffer:
            self._pending.append(buffer)
            self._size += len(buffer)
            if self._size >= FLUSH_BYTES:
                self._flush(timeout)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self._flush(timeout)
        return self._inner.read(max_bytes, timeout)

    def close(self) -> None:
        self._pending.clear()
        self._inner.close()

    def start_tls(self, ssl_context: typing.Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        self._flush(timeout)
        return self._inner.start_tls(ssl_context, server_hostname, timeout)

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class _AsyncStream(httpcore.AsyncNetworkStream):
    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self._pending: list[bytes] = []
        self._size = 0

    async def _flush(self, timeout: float | None) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            self._size = 0
            await self._inner.write(data, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if buffer:
            self._pending.append(buffer)
            self._size += len(buffer)
            if self._size >= FLUSH_BYTES:
                await self._flush(timeout)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        await self._flush(timeout)
        return await self._inner.read(max_bytes, timeout)

    async def aclose(self) -> None:
        self._pending.clear()
        await self._inner.aclose()

    async def start_tls(self, ssl_context: typing.Any, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        await self._flush(timeout)
        return await self._inner.start_tls(ssl_context, server_hostname, timeout)

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend | None = None) -> None:
        self._inner = inner or httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: typing.Iterable[_SocketOption] | None = None) -> httpcore.NetworkStream:
        return _Stream(self._inner.connect_tcp(host, port, timeout, local_address, socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: typing.Iterable[_SocketOption] | None = None) -> httpcore.NetworkStream:
        return _Stream(self._inner.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _AsyncBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: typing.Iterable[_SocketOption] | None = None) -> httpcore.AsyncNetworkStream:
        return _AsyncStream(await self._inner.connect_tcp(host, port, timeout, local_address, socket_options))

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: typing.Iterable[_SocketOption] | None = None
                                  ) -> httpcore.AsyncNetworkStream:
        return _AsyncStream(await self._inner.connect_unix_socket(path, timeout, socket_options))

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def coalescing_transport(limits: httpx.Limits, socket_options: typing.Sequence[_SocketOption], *,
                         network_backend: httpcore.NetworkBackend | None = None) -> httpx.HTTPTransport:
    """An ``httpx.HTTPTransport`` (plain HTTP/1.1, no proxy) whose connections write each request once.

    httpx's transport keeps its exception mapping and response streaming; only its connection pool
    is built here, with the same limits and socket options, on the joining network backend
    (over ``network_backend``, default httpcore's socket backend).
    """
    transport = httpx.HTTPTransport(limits=limits, socket_options=socket_options)
    transport._pool = httpcore.ConnectionPool(  # httpx has no network_backend argument
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        socket_options=socket_options,
        network_backend=_Backend(network_backend),
    )
    return transport


def coalescing_async_transport(limits: httpx.Limits, socket_options: typing.Sequence[_SocketOption], *,
                               network_backend: httpcore.AsyncNetworkBackend | None = None
                               ) -> httpx.AsyncHTTPTransport:
    """The asyncio twin of :func:`coalescing_transport` (anyio's network backend underneath)."""
    transport = httpx.AsyncHTTPTransport(limits=limits, socket_options=socket_options)
    transport._pool = httpcore.AsyncConnectionPool(
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        socket_options=socket_options,
        network_backend=_AsyncBackend(network_backend),
    )
    return transport
