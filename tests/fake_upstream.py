"""A scripted OpenAI-compatible upstream (chat completions, SSE) for tests, on pytest-httpserver.

pi's ``openai-completions`` api always streams, so every reply is an SSE body of
``chat.completion.chunk`` frames with a final usage chunk (``stream_options.include_usage``).
Tests ``enqueue()`` replies; with the queue empty it answers ``"ok"``. ``requests`` records every
JSON body received and ``authorizations`` each request's ``Authorization`` header, so a test
can assert what reached the upstream (and with which key).
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

__all__ = ["Reply", "FakeUpstream", "write_models_json", "FAKE_PROVIDER", "FAKE_MODEL"]

FAKE_PROVIDER = "fake"
FAKE_MODEL = "fake-model"


@dataclass
class Reply:
    """One scripted upstream answer."""

    text: str = "ok"
    reasoning: str | None = None
    tool_calls: list[dict[str, Any]] | None = None  # [{"name": ..., "arguments": {...}}]
    prompt_tokens: int = 11
    completion_tokens: int = 3
    cached_tokens: int = 0
    status: int = 200
    error_body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    hang: threading.Event | None = None  # block (before answering) until set
    finish_reason: str | None = None
    #: After the first text chunk, keep the response open (SSE comments) until the client goes
    #: away, then set this event: a test can see that its connection was closed.
    closed: threading.Event | None = None


def _chunk(delta: dict[str, Any], finish: str | None = None, usage: dict[str, Any] | None = None) -> bytes:
    body: dict[str, Any] = {
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": FAKE_MODEL,
        "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage:
        body["usage"] = usage
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def sse_frames(reply: Reply) -> list[bytes]:
    frames = [_chunk({"role": "assistant", "content": ""})]
    if reply.reasoning:
        frames.append(_chunk({"reasoning_content": reply.reasoning}))
    if reply.text:
        words = reply.text.split(" ")
        for i, word in enumerate(words):
            frames.append(_chunk({"content": word + (" " if i < len(words) - 1 else "")}))
    for i, call in enumerate(reply.tool_calls or []):
        frames.append(_chunk({"tool_calls": [{
            "index": i, "id": call.get("id", f"call_{i}"), "type": "function",
            "function": {"name": call["name"], "arguments": json.dumps(call["arguments"])},
        }]}))
    finish = reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")
    frames.append(_chunk({}, finish))
    usage = {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": reply.prompt_tokens + reply.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": reply.cached_tokens},
    }
    frames.append(_chunk({}, usage=usage))
    frames.append(b"data: [DONE]\n\n")
    return frames


class FakeUpstream:
    """An OpenAI chat-completions upstream answering from a queue of :class:`Reply`."""

    def __init__(self) -> None:
        self.server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
        self.replies: queue.Queue[Reply] = queue.Queue()
        self.requests: list[dict[str, Any]] = []
        self.authorizations: list[str | None] = []
        self._lock = threading.Lock()
        self.server.expect_request("/v1/chat/completions", method="POST").respond_with_handler(self._handle)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}/v1"

    def start(self) -> FakeUpstream:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.clear()
        if self.server.is_running():
            self.server.stop()

    def enqueue(self, *replies: Reply) -> None:
        for reply in replies:
            self.replies.put(reply)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.authorizations.clear()
        while not self.replies.empty():
            self.replies.get_nowait()

    @property
    def calls(self) -> int:
        with self._lock:
            return len(self.requests)

    def _handle(self, request: Request) -> Response:
        with self._lock:
            self.requests.append(json.loads(request.get_data() or b"{}"))
            self.authorizations.append(request.headers.get("Authorization"))
        try:
            reply = self.replies.get_nowait()
        except queue.Empty:
            reply = Reply()
        if reply.hang is not None:
            reply.hang.wait(60)
        if reply.status != 200:
            body = reply.error_body or {"error": {"message": f"scripted {reply.status}", "type": "server_error"}}
            return Response(json.dumps(body), status=reply.status, headers=reply.headers,
                            content_type="application/json")
        if reply.closed is not None:
            body = _until_closed(reply, reply.closed)
            return Response(body, status=200, content_type="text/event-stream", headers=reply.headers)
        return Response(sse_frames(reply), status=200, content_type="text/event-stream", headers=reply.headers)


def _until_closed(reply: Reply, closed: threading.Event) -> Iterator[bytes]:
    """The first frames of ``reply``, then a comment every 20 ms until a write fails."""
    stop = threading.Event()
    try:
        yield from sse_frames(reply)[:2]
        while not stop.wait(0.02):  # werkzeug raises out of the write once the client has gone
            yield b": still here\n\n"
    finally:
        closed.set()


def write_models_json(agent_dir: Path, base_url: str, *, provider: str = FAKE_PROVIDER,
                      model: str = FAKE_MODEL, reasoning: bool = False) -> Path:
    """Write pi's ``models.json`` declaring one openai-completions provider at ``base_url``."""
    agent_dir.mkdir(parents=True, exist_ok=True)
    path = agent_dir / "models.json"
    path.write_text(json.dumps({"providers": {provider: {
        "baseUrl": base_url, "api": "openai-completions", "apiKey": "sk-test-secret-key-123",
        "models": [{
            "id": model, "name": "Fake model", "reasoning": reasoning, "input": ["text", "image"],
            "contextWindow": 32000, "maxTokens": 4096,
            "cost": {"input": 1.0, "output": 2.0, "cacheRead": 0.5, "cacheWrite": 0.0},
            "compat": {"supportsStore": False, "supportsDeveloperRole": False,
                       "supportsReasoningEffort": False, "supportsUsageInStreaming": True,
                       "maxTokensField": "max_tokens"},
        }],
    }}}, indent=2))
    return path
