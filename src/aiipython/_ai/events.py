"""Stream events (pi's ``AssistantMessageEvent``) and the stream objects ``stream()`` returns.

Every event but ``done`` and ``error`` carries ``partial``: the growing :class:`AssistantMessage`,
one object mutated in place as deltas arrive (as in pi). :class:`Assembler` builds the events
from the gateway's delta-only SSE frames (docs/protocol.md ``/lm/stream``); the LiteLLM backend
feeds it the same frames. A stream ends with exactly one ``done`` or ``error`` event.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field

from .._errors import AiipythonError
from .types import AssistantMessage, StopReason, TextContent, ThinkingContent, ToolCall, now_ms

__all__ = [
    "StartEvent", "TextStartEvent", "TextDeltaEvent", "TextEndEvent",
    "ThinkingStartEvent", "ThinkingDeltaEvent", "ThinkingEndEvent",
    "ToolCallStartEvent", "ToolCallDeltaEvent", "ToolCallEndEvent",
    "DoneEvent", "ErrorEvent", "AssistantMessageEvent",
    "Assembler", "AssistantMessageEventStream", "AsyncAssistantMessageEventStream",
]


class _Event(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)


class StartEvent(_Event):
    type: Literal["start"] = "start"
    partial: AssistantMessage


class _BlockEvent(_Event):
    """An event about content block ``content_index`` of ``partial``."""

    content_index: int
    partial: AssistantMessage


class _DeltaEvent(_BlockEvent):
    delta: str


class _EndEvent(_BlockEvent):
    content: str


class TextStartEvent(_BlockEvent):
    type: Literal["text_start"] = "text_start"


class TextDeltaEvent(_DeltaEvent):
    type: Literal["text_delta"] = "text_delta"


class TextEndEvent(_EndEvent):
    type: Literal["text_end"] = "text_end"


class ThinkingStartEvent(_BlockEvent):
    type: Literal["thinking_start"] = "thinking_start"


class ThinkingDeltaEvent(_DeltaEvent):
    type: Literal["thinking_delta"] = "thinking_delta"


class ThinkingEndEvent(_EndEvent):
    type: Literal["thinking_end"] = "thinking_end"


class ToolCallStartEvent(_BlockEvent):
    type: Literal["toolcall_start"] = "toolcall_start"


class ToolCallDeltaEvent(_DeltaEvent):
    type: Literal["toolcall_delta"] = "toolcall_delta"


class ToolCallEndEvent(_BlockEvent):
    type: Literal["toolcall_end"] = "toolcall_end"
    tool_call: ToolCall


class DoneEvent(_Event):
    """The last event of a successful stream: ``message`` is the complete reply."""

    type: Literal["done"] = "done"
    reason: StopReason
    message: AssistantMessage


class ErrorEvent(_Event):
    """The last event of a failed stream: ``error`` is the partial message with ``stop_reason``
    ``error`` (or ``aborted``) and ``error_message``; ``exception`` the typed aiipython error
    (what ``complete()`` would raise)."""

    type: Literal["error"] = "error"
    reason: StopReason
    error: AssistantMessage
    exception: AiipythonError | None = Field(default=None, exclude=True)


AssistantMessageEvent: TypeAlias = Annotated[
    StartEvent | TextStartEvent | TextDeltaEvent | TextEndEvent | ThinkingStartEvent | ThinkingDeltaEvent
    | ThinkingEndEvent | ToolCallStartEvent | ToolCallDeltaEvent | ToolCallEndEvent | DoneEvent | ErrorEvent,
    Field(discriminator="type"),
]


class Assembler:
    """Turns delta-only frames ``(type, data)`` (docs/protocol.md) into events with ``partial``."""

    def __init__(self, provider: str, model: str) -> None:
        self.partial = AssistantMessage(provider=provider, model=model, stop_reason=StopReason.PENDING)
        self._json: dict[int, str] = {}
        self.final: AssistantMessage | None = None
        #: The typed error of a failed stream (set with ``final`` by :meth:`error`).
        self.exception: AiipythonError | None = None

    def feed(self, kind: str, data: Mapping[str, Any]) -> AssistantMessageEvent | None:
        """The event for one frame (None for a frame type this API does not know)."""
        partial = self.partial
        index = data.get("contentIndex", 0)
        if kind == "text_delta":
            block = partial.content[index]
            assert isinstance(block, TextContent)
            block.text += data["delta"]
            return TextDeltaEvent(content_index=index, delta=data["delta"], partial=partial)
        if kind == "thinking_delta":
            thinking = partial.content[index]
            assert isinstance(thinking, ThinkingContent)
            thinking.thinking += data["delta"]
            return ThinkingDeltaEvent(content_index=index, delta=data["delta"], partial=partial)
        if kind == "toolcall_delta":
            call = partial.content[index]
            assert isinstance(call, ToolCall)
            text = self._json[index] = self._json.get(index, "") + data["delta"]
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None  # not complete yet: keep the last parsed arguments
            if isinstance(parsed, dict):
                call.arguments = parsed
            return ToolCallDeltaEvent(content_index=index, delta=data["delta"], partial=partial)
        if kind == "start":
            model = data.get("model")
            if isinstance(model, Mapping):
                partial.provider = str(model.get("provider") or partial.provider)
                partial.model = str(model.get("id") or partial.model)
            return StartEvent(partial=partial)
        if kind == "text_start":
            self._put(index, TextContent())
            return TextStartEvent(content_index=index, partial=partial)
        if kind == "thinking_start":
            self._put(index, ThinkingContent())
            return ThinkingStartEvent(content_index=index, partial=partial)
        if kind == "toolcall_start":
            self._put(index, ToolCall(id=str(data.get("id") or ""), name=str(data.get("name") or "")))
            return ToolCallStartEvent(content_index=index, partial=partial)
        if kind == "text_end":
            block = partial.content[index]
            assert isinstance(block, TextContent)
            return TextEndEvent(content_index=index, content=block.text, partial=partial)
        if kind == "thinking_end":
            thinking = partial.content[index]
            assert isinstance(thinking, ThinkingContent)
            return ThinkingEndEvent(content_index=index, content=thinking.thinking, partial=partial)
        if kind == "toolcall_end":
            call = ToolCall.model_validate(data["toolCall"])
            partial.content[index] = call
            return ToolCallEndEvent(content_index=index, tool_call=call, partial=partial)
        if kind == "done":
            message = AssistantMessage.model_validate(data["message"])
            if message.duration_ms is None and isinstance(data.get("duration_ms"), (int, float)):
                message.duration_ms = float(data["duration_ms"])
            self.final = message
            return DoneEvent(reason=message.stop_reason, message=message)
        return None

    def _put(self, index: int, block: TextContent | ThinkingContent | ToolCall) -> None:
        content = self.partial.content
        if index == len(content):
            content.append(block)
        else:
            while len(content) < index:
                content.append(TextContent())
            content[index:index + 1] = [block]

    def error(self, exc: AiipythonError | None, *, aborted: bool = False) -> ErrorEvent:
        """The closing ``error`` event: the partial message marked failed (or aborted)."""
        message = self.partial.model_copy(deep=True)
        message.stop_reason = StopReason.ABORTED if aborted else StopReason.ERROR
        message.error_message = "the stream was closed before it ended" if aborted or exc is None else exc.message
        message.timestamp = now_ms()
        self.final, self.exception = message, exc
        return ErrorEvent(reason=message.stop_reason, error=message, exception=exc)


def _final(event: AssistantMessageEvent) -> AssistantMessage | None:
    if isinstance(event, DoneEvent):
        return event.message
    if isinstance(event, ErrorEvent):
        return event.error
    return None


class AssistantMessageEventStream:
    """What :func:`aiipython.stream` returns: iterate it for events, or call :meth:`result`.

    Leaving it early (``break``, :meth:`close`, the ``with`` block ending) closes the connection,
    which aborts the upstream call; :meth:`result` is then the partial message, ``aborted``.
    """

    def __init__(self, events: Iterator[AssistantMessageEvent], aborted: Callable[[], ErrorEvent]) -> None:
        self._events = events
        self._aborted = aborted
        self._result: AssistantMessage | None = None

    def __iter__(self) -> Iterator[AssistantMessageEvent]:
        try:
            for event in self._events:
                final = _final(event)
                if final is not None:
                    self._result = final
                yield event
        finally:
            if self._result is None:
                self.close()

    def result(self) -> AssistantMessage:
        """The final message (reads the rest of the stream first); ``stop_reason`` says how it ended."""
        for _ in self:
            pass
        assert self._result is not None
        return self._result

    def close(self) -> None:
        """Stop reading and abort the upstream call. Idempotent."""
        close = getattr(self._events, "close", None)
        if close is not None:
            close()
        if self._result is None:
            self._result = self._aborted().error

    def __enter__(self) -> AssistantMessageEventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncAssistantMessageEventStream:
    """What :func:`aiipython.astream` returns: ``async for`` it, or ``await`` :meth:`result`.

    Leaving early (``break`` then :meth:`aclose` or the ``async with`` block ending, or cancelling
    the task) closes the connection and aborts the upstream call.
    """

    def __init__(self, events: AsyncIterator[AssistantMessageEvent], aborted: Callable[[], ErrorEvent]) -> None:
        self._events = events
        self._aborted = aborted
        self._result: AssistantMessage | None = None

    async def _iterate(self) -> AsyncIterator[AssistantMessageEvent]:
        try:
            async for event in self._events:
                final = _final(event)
                if final is not None:
                    self._result = final
                yield event
        finally:
            if self._result is None:
                await self.aclose()

    def __aiter__(self) -> AsyncIterator[AssistantMessageEvent]:
        return self._iterate()

    async def result(self) -> AssistantMessage:
        """The final message (reads the rest of the stream first)."""
        async for _ in self:
            pass
        assert self._result is not None
        return self._result

    async def aclose(self) -> None:
        """Stop reading and abort the upstream call. Idempotent."""
        close = getattr(self._events, "aclose", None)
        if close is not None:
            await close()
        if self._result is None:
            self._result = self._aborted().error

    async def __aenter__(self) -> AsyncAssistantMessageEventStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
