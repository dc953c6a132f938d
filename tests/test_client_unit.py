"""PiGatewayClient against a scripted HTTP server (pytest-httpserver): error mapping, SSE
parsing, one attempt per call, no secret in errors. No Node here."""

from __future__ import annotations

import json

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

import aiipython
from aiipython import PiGatewayClient
from aiipython._client import _SSEParser

TOKEN = "gw-token-abcdef0123456789"


@pytest.fixture
def server() -> HTTPServer:
    srv = HTTPServer(host="127.0.0.1", port=0)
    srv.start()
    yield srv
    srv.clear()
    if srv.is_running():
        srv.stop()


@pytest.fixture
def api(server: HTTPServer) -> PiGatewayClient:
    c = PiGatewayClient(url=server.url_for("").rstrip("/"), token=TOKEN, timeout=5)
    yield c
    c.close()


def _envelope(etype: str, message: str, **extra: object) -> str:
    return json.dumps({"error": {"type": etype, "message": message, **extra}})


@pytest.mark.parametrize(
    ("status", "etype", "cls"),
    [
        (400, "invalid_request", aiipython.InvalidRequestError),
        (400, "ambiguous_model", aiipython.AmbiguousModelError),
        (400, "context_window_exceeded", aiipython.ContextWindowExceededError),
        (401, "unauthorized", aiipython.AuthenticationError),
        (403, "provider_not_configured", aiipython.ProviderNotConfiguredError),
        (404, "model_not_found", aiipython.ModelNotFoundError),
        (413, "request_too_large", aiipython.RequestTooLargeError),
        (429, "rate_limit", aiipython.RateLimitError),
        (502, "upstream_auth_error", aiipython.UpstreamAuthError),
        (502, "upstream_error", aiipython.UpstreamError),
        (503, "shutting_down", aiipython.GatewayUnavailableError),
        (504, "upstream_timeout", aiipython.UpstreamTimeoutError),
    ],
)
def test_error_envelopes_become_typed_errors(server: HTTPServer, api: PiGatewayClient, status: int,
                                            etype: str, cls: type) -> None:
    server.expect_oneshot_request("/lm/complete", method="POST").respond_with_data(
        _envelope(etype, f"scripted {etype}", candidates=["a/x", "b/x"]), status=status,
        content_type="application/json", headers={"x-request-id": "req-7"},
    )
    with pytest.raises(cls) as info:
        api.complete("a/x", [{"role": "user", "content": "hi"}])
    err = info.value
    assert type(err) is cls
    assert err.status == status and err.code == etype
    assert err.request_id == "req-7" and err.model == "a/x" and err.provider == "a"
    assert err.candidates == ["a/x", "b/x"]
    assert isinstance(err, aiipython.GatewayError)


def test_rate_limit_carries_retry_after_from_header(server: HTTPServer, api: PiGatewayClient) -> None:
    server.expect_oneshot_request("/lm/complete").respond_with_data(
        _envelope("rate_limit", "slow down"), status=429, headers={"retry-after": "7"},
        content_type="application/json",
    )
    with pytest.raises(aiipython.RateLimitError) as info:
        api.complete("p/m", [{"role": "user", "content": "hi"}])
    assert info.value.retry_after == 7.0
    assert aiipython._errors.is_retryable(info.value)


def test_one_attempt_per_call(server: HTTPServer, api: PiGatewayClient) -> None:
    server.expect_request("/lm/complete").respond_with_data(_envelope("upstream_error", "boom"), status=502)
    with pytest.raises(aiipython.UpstreamError):
        api.complete("p/m", [{"role": "user", "content": "hi"}])
    assert len(server.log) == 1


def test_non_envelope_error_is_a_protocol_error_not_success(server: HTTPServer, api: PiGatewayClient) -> None:
    server.expect_request("/health").respond_with_data("<html>oops</html>", status=500)
    with pytest.raises(aiipython.GatewayError) as info:
        api.health()
    assert "500" in str(info.value)


def test_token_is_sent_and_scrubbed_from_messages(server: HTTPServer, api: PiGatewayClient) -> None:
    server.expect_request("/models", headers={"authorization": f"Bearer {TOKEN}"}).respond_with_data(
        _envelope("internal_error", f"leaked {TOKEN} here"), status=500, content_type="application/json")
    with pytest.raises(aiipython.GatewayError) as info:
        api.list_models()
    assert TOKEN not in str(info.value) and "[redacted]" in str(info.value)


def _sse(*frames: tuple[str, dict]) -> bytes:
    return b"".join(f"event: {e}\ndata: {json.dumps(d, ensure_ascii=False)}\n\n".encode() for e, d in frames)


def test_stream_yields_frames_in_order_and_stops_at_done(server: HTTPServer, api: PiGatewayClient) -> None:
    body = _sse(("start", {"model": {"provider": "p", "id": "m"}}),
                ("text_delta", {"contentIndex": 0, "delta": "line\u2028sep"}),
                ("text_delta", {"contentIndex": 0, "delta": " more"}),
                ("done", {"reason": "stop", "message": {"role": "assistant", "content": []}}))
    server.expect_request("/lm/stream").respond_with_data(body, content_type="text/event-stream")
    events = list(api.stream("p/m", [{"role": "user", "content": "hi"}]))
    assert [e.type for e in events] == ["start", "text_delta", "text_delta", "done"]
    assert events[1].delta == "line\u2028sep" and events[1].content_index == 0
    assert events[-1].message == {"role": "assistant", "content": []}


def test_stream_error_frame_raises_typed_error_after_deltas(server: HTTPServer, api: PiGatewayClient) -> None:
    body = _sse(("text_delta", {"contentIndex": 0, "delta": "partial"}),
                ("error", {"error": {"type": "upstream_error", "message": "500 upstream"}, "message": None}))
    server.expect_request("/lm/stream").respond_with_data(body, content_type="text/event-stream")
    seen = []
    with pytest.raises(aiipython.UpstreamError) as info:
        for event in api.stream("p/m", [{"role": "user", "content": "hi"}]):
            seen.append(event.type)
    assert seen == ["text_delta"]
    assert info.value.status == 502


def test_stream_without_done_is_a_protocol_error(server: HTTPServer, api: PiGatewayClient) -> None:
    body = _sse(("text_delta", {"contentIndex": 0, "delta": "cut"}))
    server.expect_request("/lm/stream").respond_with_data(body, content_type="text/event-stream")
    with pytest.raises(aiipython.GatewayProtocolError):
        list(api.stream("p/m", [{"role": "user", "content": "hi"}]))


def test_stream_http_error_before_first_frame(server: HTTPServer, api: PiGatewayClient) -> None:
    server.expect_request("/lm/stream").respond_with_data(
        _envelope("model_not_found", "no such model; close: p/m2", candidates=["p/m2"]), status=404)
    with pytest.raises(aiipython.ModelNotFoundError) as info:
        list(api.stream("p/m", [{"role": "user", "content": "hi"}]))
    assert info.value.candidates == ["p/m2"]


async def test_async_twins(server: HTTPServer, api: PiGatewayClient) -> None:
    server.expect_request("/health").respond_with_json({"ok": True, "pid": 1})
    server.expect_request("/lm/complete").respond_with_json({"message": {"content": []}, "model": {}, "duration_ms": 1})
    server.expect_request("/lm/stream").respond_with_data(
        _sse(("text_delta", {"contentIndex": 0, "delta": "a"}), ("done", {"reason": "stop", "message": {}})),
        content_type="text/event-stream")
    assert (await api.ahealth())["ok"] is True
    assert "message" in await api.acomplete("p/m", [{"role": "user", "content": "x"}])
    assert [e.type async for e in api.astream("p/m", [{"role": "user", "content": "x"}])] == ["text_delta", "done"]
    await api.aclose()


def test_unreachable_gateway_is_gateway_exited(server: HTTPServer) -> None:
    url = server.url_for("").rstrip("/")
    server.stop()
    c = PiGatewayClient(url=url, token=TOKEN, timeout=2)
    with pytest.raises(aiipython.GatewayExitedError):
        c.health()


def test_closed_client_refuses() -> None:
    c = PiGatewayClient(url="http://127.0.0.1:9", token=TOKEN)
    c.close()
    with pytest.raises(aiipython.GatewayClosedError):
        c.health()


def test_sse_parser_handles_split_chunks_and_crlf() -> None:
    parser = _SSEParser()
    raw = b"event: text_delta\r\ndata: {\"delta\": \"h\xc3\xa9\"}\r\n\r\n: comment\n\nevent: done\ndata: {}\n\n"
    events = []
    for i in range(len(raw)):
        events += parser.feed(raw[i:i + 1])
    assert [(e.type, e.data) for e in events] == [("text_delta", {"delta": "h\u00e9"}), ("done", {})]


def test_client_arguments_validated() -> None:
    with pytest.raises(ValueError, match="both url and token"):
        PiGatewayClient(url="http://127.0.0.1:1")


def test_response_not_json_is_protocol_error(server: HTTPServer, api: PiGatewayClient) -> None:
    server.expect_request("/health").respond_with_response(Response("not json", status=200))
    with pytest.raises(aiipython.GatewayProtocolError):
        api.health()


def test_register_providers_puts_the_blocks_with_the_admin_token(server: HTTPServer, api: PiGatewayClient) -> None:
    block = {"api": "openai-completions", "baseUrl": "http://127.0.0.1:1/v1", "apiKey": "k", "models": []}
    server.expect_oneshot_request("/providers", method="PUT", json={"providers": {"local": block}},
                                  headers={"authorization": f"Bearer {TOKEN}"}).respond_with_json(
        {"ok": True, "providers": ["local"]})
    assert api.register_providers({"local": block}) == {"ok": True, "providers": ["local"]}
    server.expect_oneshot_request("/providers", method="PUT").respond_with_data(
        _envelope("forbidden", "this route needs the admin token"), status=403, content_type="application/json")
    with pytest.raises(aiipython.PermissionDeniedError, match="admin token"):
        api.register_providers({"local": block})


def test_local_model_registration_that_cannot_connect_raises_the_typed_error(
        server: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Gateway.ensure_model registers the started local model through PiGatewayClient, so a
    gateway that cannot be reached is a GatewayExitedError, not a raw httpx error."""
    from aiipython import _local_model
    from aiipython._gateway import Gateway
    from aiipython._settings import load_settings

    class StartedServer:  # the llama.cpp server itself is not what this test is about
        def alive(self) -> bool:
            return True

        def provider_config(self) -> dict[str, object]:
            return {"api": "openai-completions", "baseUrl": "http://127.0.0.1:1/v1", "apiKey": "k", "models": []}

    monkeypatch.setattr(_local_model, "get_local_model", lambda settings=None: StartedServer())
    url = server.url_for("").rstrip("/")
    server.stop()  # nothing listens there any more
    gateway = Gateway(url, TOKEN, admin_token="admin-" + TOKEN, local_offered=True, settings=load_settings({}))
    with pytest.raises(aiipython.GatewayExitedError) as caught:
        gateway.ensure_model("local/smollm2-135m")
    assert TOKEN not in str(caught.value) and gateway.local_model is None


def test_scrub_only_whole_secrets_long_enough_to_be_secrets() -> None:
    from aiipython._errors import scrub

    assert scrub("wrong gateway token", ("a",)) == "wrong gateway token"
    assert scrub("token abc", ("abc",)) == "token abc"
    long = "s3cr3t-token-0123456789"
    assert scrub(f"got {long}, and '{long}'", (long,)) == "got [redacted], and '[redacted]'"
    assert scrub(f"x{long}y and {long}-more", (long,)) == f"x{long}y and {long}-more"  # not whole: not this token
