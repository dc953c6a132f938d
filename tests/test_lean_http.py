"""The lean sync HTTP path of PiGatewayClient (_lean_http.py) on real loopback sockets (unit).

Each server is a raw socket that does one scripted thing per connection, so the client's
behaviour on keep-alive, EOF, reset, chunked bodies and timeouts is what the OS does.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable, Iterator

import httpx
import pytest

from aiipython._lean_http import LeanPool
from aiipython._resend import not_delivered

Handler = Callable[[socket.socket, int], None]


class Server:
    """Accepts connections and runs ``handler(conn, index)`` for each, in its own thread."""

    def __init__(self, handler: Handler) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections = 0
        self.handler = handler
        self.threads: list[threading.Thread] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            index = self.connections
            self.connections += 1
            t = threading.Thread(target=self._run, args=(conn, index), daemon=True)
            self.threads.append(t)
            t.start()

    def _run(self, conn: socket.socket, index: int) -> None:
        with conn:
            self.handler(conn, index)

    def close(self) -> None:
        self.sock.close()


def read_request(conn: socket.socket) -> bytes:
    """One request (head + content-length body), or b"" at EOF."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length")), 0)
    while len(body) < length:
        body += conn.recv(65536)
    return head + b"\r\n\r\n" + body


def reply(body: bytes, status: str = "200 OK") -> bytes:
    return (f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\nx-request-id: r1\r\n"
            f"content-length: {len(body)}\r\n\r\n").encode() + body


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], Server]]:
    servers: list[Server] = []

    def make(handler: Handler) -> Server:
        servers.append(Server(handler))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


@pytest.fixture
def pool() -> Iterator[LeanPool]:
    p = LeanPool()
    yield p
    p.close()


def post(pool: LeanPool, url: str, read_timeout: float = 10.0) -> tuple[int, bytes]:
    r = pool.post(url, "/lm/complete", b'{"model":"m"}', "tok", connect_timeout=5, read_timeout=read_timeout)
    try:
        return r.status_code, r.read()
    finally:
        r.close()


def test_keep_alive_one_connection_and_the_request_as_sent(serve: Callable[[Handler], Server],
                                                          pool: LeanPool) -> None:
    seen: list[bytes] = []

    def handler(conn: socket.socket, _: int) -> None:
        while req := read_request(conn):
            seen.append(req)
            conn.sendall(reply(b'{"ok":true}'))

    srv = serve(handler)
    for _ in range(3):
        assert post(pool, srv.url) == (200, b'{"ok":true}')
    assert srv.connections == 1, "kept alive"
    head, _, body = seen[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /lm/complete HTTP/1.1"
    assert b"Authorization: Bearer tok" in lines and b"Content-Type: application/json" in lines
    assert body == b'{"model":"m"}'


def test_an_idle_connection_the_server_closed_is_not_reused(serve: Callable[[Handler], Server],
                                                           pool: LeanPool) -> None:
    def handler(conn: socket.socket, _: int) -> None:
        read_request(conn)
        conn.sendall(reply(b"{}"))  # keep-alive by the headers, then closed: what an idle timeout does

    srv = serve(handler)
    assert post(pool, srv.url)[0] == 200
    srv.threads[0].join(5)  # the server's side is closed now
    assert post(pool, srv.url)[0] == 200
    assert srv.connections == 2


def test_a_reset_before_any_response_byte_is_not_delivered(serve: Callable[[Handler], Server], pool: LeanPool) -> None:
    def handler(conn: socket.socket, _: int) -> None:
        conn.recv(10)  # part of the request read, the rest left unread: close() sends RST
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    srv = serve(handler)
    with pytest.raises((httpx.ReadError, httpx.WriteError)) as info:
        post(pool, srv.url)
    assert not_delivered(info.value)


def test_an_eof_before_the_status_line_may_have_been_delivered(serve: Callable[[Handler], Server],
                                                              pool: LeanPool) -> None:
    def handler(conn: socket.socket, _: int) -> None:
        read_request(conn)  # read in full, then closed with a FIN: the gateway may have acted on it

    srv = serve(handler)
    with pytest.raises(httpx.RemoteProtocolError) as info:
        post(pool, srv.url)
    assert not not_delivered(info.value)


def test_connection_refused_is_connect_error(pool: LeanPool) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(httpx.ConnectError) as info:
        post(pool, f"http://127.0.0.1:{port}")
    assert not_delivered(info.value)


def test_chunked_stream_read_as_it_arrives_and_an_early_close_closes_the_socket(
        serve: Callable[[Handler], Server], pool: LeanPool) -> None:
    closed = threading.Event()
    second = threading.Event()

    def handler(conn: socket.socket, _: int) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
                     b"6\r\nevent1\r\n")
        second.wait(5)
        try:
            conn.sendall(b"6\r\nevent2\r\n")
            if not conn.recv(1):  # EOF: the client closed the stream
                closed.set()
        except OSError:
            closed.set()

    srv = serve(handler)
    r = pool.post(srv.url, "/lm/stream", b"{}", "tok", connect_timeout=5, read_timeout=10)
    chunks = r.iter_raw()
    assert next(chunks) == b"event1"
    second.set()
    assert next(chunks) == b"event2"
    r.close()
    assert closed.wait(5), "the server saw the connection close"


def test_a_silent_server_is_a_read_timeout(serve: Callable[[Handler], Server], pool: LeanPool) -> None:
    done = threading.Event()

    def handler(conn: socket.socket, _: int) -> None:
        read_request(conn)
        done.wait(10)

    srv = serve(handler)
    try:
        with pytest.raises(httpx.ReadTimeout):
            post(pool, srv.url, read_timeout=0.2)
    finally:
        done.set()


def test_an_error_status_keeps_its_body_and_headers(serve: Callable[[Handler], Server], pool: LeanPool) -> None:
    def handler(conn: socket.socket, _: int) -> None:
        read_request(conn)
        body = b'{"error":{"type":"overloaded"}}'
        conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nX-Request-Id: r1\r\nRetry-After: 1\r\n"
                     b"content-length: %d\r\n\r\n%s" % (len(body), body))

    srv = serve(handler)
    r = pool.post(srv.url, "/lm/complete", b"{}", "tok", connect_timeout=5, read_timeout=5)
    assert r.status_code == 503
    assert r.headers.get("retry-after") == "1" and r.headers.get("x-request-id") == "r1"
    assert r.json() == {"error": {"type": "overloaded"}}
    r.close()


def test_only_plain_http_on_loopback_takes_this_path() -> None:
    assert LeanPool.usable("http://127.0.0.1:4141") and LeanPool.usable("http://localhost:4141/base")
    assert LeanPool.usable("http://[::1]:4141")
    assert not LeanPool.usable("https://127.0.0.1:4141")  # TLS: httpx
    assert not LeanPool.usable("http://gateway.example:4141")  # remote (proxies, DNS): httpx
