"""A stand-in for PiGatewayClient in unit tests: the :class:`aiipython._gateway_options.LMClient`
interface, answering from queues and recording every call. mypy checks that it satisfies the
protocol (``tests/test_lm_unit.py::test_the_fake_client_satisfies_the_client_protocol``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiipython._client import StreamEvent
from aiipython._gateway_options import LMClient

__all__ = ["FakeClient", "Frame", "MODEL_INFO", "PLAIN_INFO", "COMPLETIONS_OPTIONS"]

#: StreamEvent is what the client yields; tests build frames with it.
Frame = StreamEvent

#: The options GET /models lists for an openai-completions model (docs/protocol.md).
COMPLETIONS_OPTIONS = ["temperature", "max_tokens", "tool_choice", "session_id", "timeout_ms", "reasoning", "stop",
                       "top_p", "seed", "presence_penalty", "frequency_penalty", "user", "parallel_tool_calls",
                       "response_format"]
MODEL_INFO: dict[str, Any] = {
    "provider": "fake", "id": "m", "name": "M", "api": "openai-completions", "reasoning": True,
    "thinking_levels": ["off", "minimal", "low", "medium", "high"],
    "input": ["text", "image"], "context_window": 8000, "max_tokens": 1000, "available": True,
    "options": COMPLETIONS_OPTIONS,
}
#: A model whose (made-up) API carries none of the native sampling/format options.
PLAIN_INFO: dict[str, Any] = {**MODEL_INFO, "id": "plain", "api": "plain-api", "reasoning": False,
                              "thinking_levels": ["off"],
                              "options": ["temperature", "max_tokens", "tool_choice", "session_id", "timeout_ms"]}


@dataclass
class FakeClient:
    """The client interface, answering from queues (an Exception in a queue is raised)."""

    models: list[dict[str, Any]] = field(default_factory=lambda: [MODEL_INFO, PLAIN_INFO])
    replies: list[Any] = field(default_factory=list)
    streams: list[Any] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    list_calls: int = 0
    closed: bool = False

    def list_models(self) -> dict[str, Any]:
        self.list_calls += 1
        return {"models": self.models, "default_model": None, "models_json_error": None}

    def auth_status(self) -> dict[str, Any]:
        return {"providers": [{"provider": m["provider"], "configured": bool(m.get("available")), "env_vars": []}
                              for m in self.models]}

    def _next(self, queue: list[Any], model: str, messages: list[dict[str, Any]],
              tools: list[dict[str, Any]] | None, options: dict[str, Any] | None, kind: str) -> Any:
        self.calls.append({"kind": kind, "model": model, "messages": messages, "tools": tools, "options": options})
        item = queue.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    def complete(self, model: str, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None = None,
                 options: dict[str, Any] | None = None) -> dict[str, Any]:
        msg = self._next(self.replies, model, messages, tools, options, "complete")
        return {"message": msg, "model": {"provider": "fake", "id": "m"}, "duration_ms": 2.5}

    def stream(self, model: str, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None = None,
               options: dict[str, Any] | None = None) -> Iterator[StreamEvent]:
        frames: Iterable[StreamEvent] = self._next(self.streams, model, messages, tools, options, "stream")
        yield from frames

    async def acomplete(self, model: str, messages: list[dict[str, Any]], *,
                        tools: list[dict[str, Any]] | None = None,
                        options: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.complete(model, messages, tools=tools, options=options)

    async def astream(self, model: str, messages: list[dict[str, Any]], *,
                      tools: list[dict[str, Any]] | None = None,
                      options: dict[str, Any] | None = None) -> AsyncIterator[StreamEvent]:
        frames: Iterable[StreamEvent] = self._next(self.streams, model, messages, tools, options, "astream")
        for frame in frames:
            await asyncio.sleep(0)  # a real client yields to the loop between frames
            yield frame

    def close(self) -> None:
        self.closed = True


def _satisfies_the_protocol() -> LMClient:
    return FakeClient()  # mypy: FakeClient is an LMClient
