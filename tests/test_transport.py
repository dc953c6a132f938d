"""The client's transports send a request in one socket write (unit; a real loopback server)."""

from __future__ import annotations

import asyncio
import http.server
import socket
import threading
import typing
from collections.abc import Iterator

import httpcore
import httpx
import pytest

from aiipython._resend import not_delivered
from aiipython._transport import FLUSH_BYTES, coalescing_async_transport, coalescing_transport

_OPTS = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


class _Echo(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # http.server's naming
        body = self.rfile.read(int(self.headers["content-length"]))
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


class _Recording(httpcore.NetworkBackend):
    """httpcore's socket backend, recording the size of every write that reaches a socket."""

    def __init__(self, fail_writes: bool = False) -> None:
        self.writes: list[int] = []
        self.fail_writes = fail_writes

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: typing.Any = None) -> httpcore.NetworkStream:
        stream = httpcore.SyncBackend().connect_tcp(host, port, timeout, local_address, socket_options)
        backend = self

        class Stream(httpcore.NetworkStream):
            def write(self, buffer: bytes, timeout: float | None = None) -> None:
                backend.writes.append(len(buffer))
                if backend.fail_writes:
                    try:
                        raise ConnectionResetError(104, "Connection reset by peer")
                    except ConnectionResetError as exc:
                        raise httpcore.WriteError(str(exc)) from exc
                stream.write(buffer, timeout)

            def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
                return stream.read(max_bytes, timeout)

            def close(self) -> None:
                stream.close()

        return Stream()


def test_head_and_body_leave_in_one_write(server: str) -> None:
    rec = _Recording()
    with httpx.Client(transport=coalescing_transport(httpx.Limits(), _OPTS, network_backend=rec)) as client:
        for _ in range(3):  # on a kept-alive connection too
            r = client.post(server + "/x", json={"hello": "world"})
            assert r.status_code == 200 and r.json() == {"hello": "world"}
            with client.stream("POST", server + "/x", content=b"streamed") as s:
                assert b"".join(s.iter_raw()) == b"streamed"
    assert len(rec.writes) == 6, rec.writes  # one write per request, head and body together
    plain = _Recording()
    with httpcore.ConnectionPool(socket_options=_OPTS, network_backend=plain) as pool:
        pool.request("POST", server + "/x", content=b"abc")
    assert len(plain.writes) >= 2, "httpcore alone writes the head and the body separately"


def test_a_large_streamed_body_is_written_as_it_comes(server: str) -> None:
    rec = _Recording()
    piece = b"x" * (FLUSH_BYTES // 4)

    def body() -> Iterator[bytes]:
        for _ in range(20):  # 5 x FLUSH_BYTES
            yield piece

    with httpx.Client(transport=coalescing_transport(httpx.Limits(), _OPTS, network_backend=rec)) as client:
        r = client.post(server + "/x", content=body(), headers={"content-length": str(20 * len(piece))})
        assert r.content == piece * 20
    assert len(rec.writes) >= 5 and max(rec.writes) <= FLUSH_BYTES + 1024, rec.writes


def test_a_write_that_fails_is_a_write_error_that_counts_as_not_delivered(server: str) -> None:
    rec = _Recording(fail_writes=True)
    with httpx.Client(transport=coalescing_transport(httpx.Limits(), _OPTS, network_backend=rec)) as client, \
            pytest.raises(httpx.WriteError) as info:
        client.post(server + "/x", json={"a": 1})
    assert not_delivered(info.value)


def test_async_twin_writes_once(server: str) -> None:
    writes: list[int] = []

    class Recording(httpcore.AsyncNetworkBackend):
        async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                              local_address: str | None = None, socket_options: typing.Any = None
                              ) -> httpcore.AsyncNetworkStream:
            stream = await httpcore.AnyIOBackend().connect_tcp(host, port, timeout, local_address, socket_options)

            class Stream(httpcore.AsyncNetworkStream):
                async def write(self, buffer: bytes, timeout: float | None = None) -> None:
                    writes.append(len(buffer))
                    await stream.write(buffer, timeout)

                async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
                    return await stream.read(max_bytes, timeout)

                async def aclose(self) -> None:
                    await stream.aclose()

            return Stream()

    async def main() -> None:
        transport = coalescing_async_transport(httpx.Limits(), _OPTS, network_backend=Recording())
        async with httpx.AsyncClient(transport=transport) as client:
            for _ in range(2):
                r = await client.post(server + "/x", json={"n": 1})
                assert r.json() == {"n": 1}

    asyncio.run(main())
    assert len(writes) == 2, writes
