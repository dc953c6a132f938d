"""The first call after a crash succeeds, and no call that may have reached a provider is sent
twice: a call is sent once more only when the connection was refused or reset with the request
unread (``aiipython._resend``). Raw socket servers make each TCP outcome happen for real; the
kill -9 rounds run the real gateway."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from conftest import FAKE

import aiipython
from aiipython._gateway import get_gateway

_REPLY = {"message": {"role": "assistant", "content": [{"type": "text", "text": "hi"}], "stopReason": "stop"},
          "model": {"provider": "p", "id": "m"}, "duration_ms": 1.0}


def _request_length(data: bytes) -> int | None:
    """The byte length of the HTTP request at the start of ``data``, once its head has arrived."""
    head, sep, _ = data.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.split(b"\r\n")
    length = next(int(line.split(b":")[1]) for line in lines if line.lower().startswith(b"content-length"))
    return len(head) + 4 + length


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while (size := _request_length(data)) is None or len(data) < size:
        data += conn.recv(65536)
    return data


def _answer(conn: socket.socket) -> None:
    _read_request(conn)
    payload = json.dumps(_REPLY).encode()
    conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                 % (len(payload), payload))


def _reset_unread(conn: socket.socket) -> None:
    """Wait until the whole request has arrived, then close without reading it: the kernel sends
    RST (what a gateway killed before it read our request does)."""
    while (size := _request_length(peek := conn.recv(1 << 20, socket.MSG_PEEK))) is None or len(peek) < size:
        pass  # the rest of a loopback request follows within microseconds
    conn.close()


def _read_then_close(conn: socket.socket) -> None:
    """Read the whole request, then close cleanly (FIN): the call may have been acted on."""
    _read_request(conn)
    conn.close()


@contextmanager
def raw_server(*handlers: Callable[[socket.socket], None]) -> Iterator[tuple[str, list[int]]]:
    """A loopback server whose n-th connection is given to ``handlers[n]``; yields (url, accepted)."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[int] = []

    def serve() -> None:
        for i, handler in enumerate(handlers):
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(i)
            with conn:
                handler(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", accepted
    finally:
        listener.close()
        thread.join(5)


@pytest.mark.parametrize("method", ["complete", "stream"])
def test_a_reset_with_the_request_unread_is_sent_once_more(method: str) -> None:
    with raw_server(_reset_unread, _answer) as (url, accepted), \
            aiipython.PiGatewayClient(url=url, token="t") as client:
        if method == "complete":
            assert client.complete("p/m", [{"role": "user", "content": "hi"}])["message"]["stopReason"] == "stop"
        else:
            with pytest.raises(aiipython.GatewayProtocolError):  # a JSON reply is not a stream: it was answered
                list(client.stream("p/m", [{"role": "user", "content": "hi"}]))
    assert accepted == [0, 1]


def test_a_request_the_gateway_read_is_never_sent_again() -> None:
    with raw_server(_read_then_close, _answer) as (url, accepted), \
            aiipython.PiGatewayClient(url=url, token="t") as client:
        with pytest.raises(aiipython.GatewayExitedError, match="may have reached the provider"):
            client.complete("p/m", [{"role": "user", "content": "hi"}])
    assert accepted == [0]


async def test_async_reset_is_sent_once_more_and_read_is_not() -> None:
    with raw_server(_reset_unread, _answer) as (url, accepted):
        client = aiipython.PiGatewayClient(url=url, token="t")
        assert (await client.acomplete("p/m", [{"role": "user", "content": "hi"}]))["model"]["id"] == "m"
        await client.aclose()
    assert accepted == [0, 1]
    with raw_server(_read_then_close, _answer) as (url, accepted):
        client = aiipython.PiGatewayClient(url=url, token="t")
        with pytest.raises(aiipython.GatewayExitedError):
            await client.acomplete("p/m", [{"role": "user", "content": "hi"}])
        await client.aclose()
    assert accepted == [0]


@pytest.mark.gateway
@pytest.mark.timeout(1800)  # 20 gateway starts: about 1 min on a quiet 2-core machine, far more under load
def test_twenty_rounds_of_kill_9_then_one_call(process_gateway: None, fake_upstream) -> None:  # type: ignore[no-untyped-def]
    client = aiipython.PiGatewayClient()
    pids = set()
    try:
        client.health()  # a pooled keep-alive connection to the first gateway
        for _ in range(20):
            gateway = get_gateway()
            pids.add(gateway.pid)
            os.kill(gateway.pid, signal.SIGKILL)  # no waiting: the next call races the death
            result = client.complete(FAKE, [{"role": "user", "content": "hi"}])
            assert result["message"]["stopReason"] == "stop"
    finally:
        client.close()
    assert len(pids) == 20
    assert fake_upstream.calls == 20  # each call reached the provider exactly once
