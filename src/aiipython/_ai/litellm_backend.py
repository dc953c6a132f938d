"""The LiteLLM backend of the typed API: the same events and types as the pi backend.

LiteLLM's streaming chunks (``content``, ``reasoning_content``, tool-call deltas, the final usage
chunk) become pi-shaped delta frames fed to the same :class:`Assembler`, so both backends give
one event sequence for one upstream reply. Usage follows pi's rule (``input`` excludes cached
tokens); cost is LiteLLM's price for the model, ``Cost(known=False)`` when it has none.
finish_reason maps to pi's stop reason as pi-ai's openai-completions maps it (:data:`_FINISH`);
``aiipython ask`` streams through here too, so this is the one mapping. litellm is imported only
here, with ``LITELLM_LOCAL_MODEL_COST_MAP=True`` (no network at import).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

from .. import _errors as E
from .backends import openai_messages, openai_tools
from .events import Assembler, AssistantMessageEvent, DoneEvent
from .types import (
    AssistantMessage,
    Context,
    Cost,
    SimpleStreamOptions,
    StopReason,
    StreamOptions,
    TextContent,
    ThinkingContent,
    ToolCall,
    Usage,
)

__all__ = ["LiteLLMBackend"]

#: LiteLLM's (OpenAI's) finish_reason -> pi's StopReason, as pi-ai's openai-completions
#: ``mapStopReason`` maps it. ``content_filter`` is ERROR: OpenAI means "content was omitted due to
#: a flag from our content filters" (LiteLLM maps Gemini's SAFETY/RECITATION and Bedrock's
#: guardrails to it too), so the reply is withheld or cut, not a finished answer; pi reports it as
#: an error ("Provider finish_reason: content_filter"), which the gateway raises as UpstreamError,
#: and the LiteLLM backend must not call the same reply a success. A finish_reason not listed here
#: is an error as well (pi's default), though LiteLLM already turns one it does not know into
#: "stop" before it reaches us; none at all is STOP.
_FINISH = {"stop": StopReason.STOP, "end": StopReason.STOP, "length": StopReason.LENGTH,
           "tool_calls": StopReason.TOOL_USE, "function_call": StopReason.TOOL_USE}


def _litellm() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    return litellm


def _kwargs(model: str, context: Context, options: StreamOptions | None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"model": model, "messages": openai_messages(context), "num_retries": 0}
    tools = openai_tools(context)
    if tools:
        kwargs["tools"] = tools
    if options is not None:
        for ours, theirs in (("temperature", "temperature"), ("max_tokens", "max_tokens"), ("stop", "stop"),
                             ("tool_choice", "tool_choice"), ("api_key", "api_key"),
                             ("headers", "extra_headers"), ("max_retries", "num_retries")):
            value = getattr(options, ours)
            if value is not None:
                kwargs[theirs] = value
        if options.timeout_ms is not None:
            kwargs["timeout"] = options.timeout_ms / 1000.0
        if isinstance(options, SimpleStreamOptions) and options.reasoning is not None:
            kwargs["reasoning_effort"] = options.reasoning.value
    return kwargs


def _error(exc: Exception, model: str) -> E.AiipythonError:
    """LiteLLM's exception as aiipython's typed error (by HTTP status; its text is not copied: it
    may hold credentials), naming the fix when the exception's class has one (``_errors``)."""
    status = getattr(exc, "status_code", None)
    name = type(exc).__name__
    provider = model.split("/", 1)[0] if "/" in model else None
    if "ContextWindow" in name:
        cls: type[E.AiipythonError] = E.ContextWindowExceededError
    elif "Timeout" in name or status == 408:
        cls = E.UpstreamTimeoutError
    elif status in (401, 403):
        cls = E.UpstreamAuthError
    elif status == 404 or "NotFound" in name:
        cls = E.ModelNotFoundError
    elif status == 429:
        cls = E.RateLimitError
    elif isinstance(status, int) and 400 <= status < 500:
        cls = E.InvalidRequestError
    else:
        cls = E.UpstreamError
    where = f"HTTP {status}, " if isinstance(status, int) else ""
    found = E.lm_error_fix(exc)
    fix = f" (to fix: {found[0]})" if found is not None else ""
    return cls(f"LiteLLM call to {model!r} failed ({where}{name}){fix}",
               status=status if isinstance(status, int) else None, model=model, provider=provider)


class _Chunks:
    """LiteLLM stream chunks -> pi-shaped frames (the gateway's, docs/protocol.md) -> events.

    Block rule of pi's openai-completions: one text block, one thinking block and one block per
    tool-call index, each opened on its first delta and all ended, in content order, at the end.
    """

    def __init__(self, model: str, assembler: Assembler) -> None:
        self.model = model
        self.assembler = assembler
        self.text: int | None = None
        self.thinking: int | None = None
        self.tools: dict[int, int] = {}  # tool-call index -> content index
        self.count = 0
        self.finish: str | None = None
        self.usage: Any = None

    def _frame(self, kind: str, **data: Any) -> AssistantMessageEvent | None:
        return self.assembler.feed(kind, data)

    def _open(self, kind: str, **data: Any) -> tuple[int, AssistantMessageEvent | None]:
        index, self.count = self.count, self.count + 1
        return index, self._frame(f"{kind}_start", contentIndex=index, **data)

    def start(self) -> AssistantMessageEvent | None:
        provider, _, model_id = self.model.partition("/")
        return self._frame("start", model={"provider": provider if model_id else "", "id": model_id or provider})

    def feed(self, chunk: Any) -> list[AssistantMessageEvent]:
        events: list[AssistantMessageEvent | None] = []
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            self.usage = usage
        for choice in getattr(chunk, "choices", None) or []:
            delta = choice.delta
            reasoning = getattr(delta, "reasoning_content", None)
            if reasoning:
                if self.thinking is None:
                    self.thinking, event = self._open("thinking")
                    events.append(event)
                events.append(self._frame("thinking_delta", contentIndex=self.thinking, delta=reasoning))
            if delta.content:
                if self.text is None:
                    self.text, event = self._open("text")
                    events.append(event)
                events.append(self._frame("text_delta", contentIndex=self.text, delta=delta.content))
            for call in getattr(delta, "tool_calls", None) or []:
                fn = call.function
                key = call.index if call.index is not None else len(self.tools)
                index = self.tools.get(key)
                if index is None:
                    index, event = self._open("toolcall", id=call.id or "", name=getattr(fn, "name", "") or "")
                    self.tools[key] = index
                    events.append(event)
                if fn is not None and fn.arguments:
                    events.append(self._frame("toolcall_delta", contentIndex=index, delta=fn.arguments))
            if choice.finish_reason:
                self.finish = choice.finish_reason
        return [e for e in events if e is not None]

    def _end(self, index: int) -> AssistantMessageEvent | None:
        block = self.assembler.partial.content[index]
        if isinstance(block, TextContent):
            return self._frame("text_end", contentIndex=index)
        if isinstance(block, ThinkingContent):
            return self._frame("thinking_end", contentIndex=index)
        text = self.assembler._json.get(index, "")  # the assembler's argument text
        try:
            arguments = json.loads(text) if text else {}
        except ValueError:
            arguments = {}
        done = {"type": "toolCall", "id": block.id, "name": block.name,
                "arguments": arguments if isinstance(arguments, dict) else {}}
        return self._frame("toolcall_end", contentIndex=index, toolCall=done)

    def done(self) -> list[AssistantMessageEvent]:
        """The block ends, then ``done`` — or, for a finish_reason pi calls an error
        (``content_filter``, an unknown one; :data:`_FINISH`), the ``error`` event with
        :class:`UpstreamError`, as the gateway reports the same reply."""
        events: list[AssistantMessageEvent] = [e for e in (self._end(i) for i in range(self.count)) if e is not None]
        partial = self.assembler.partial
        usage = self._usage()
        stop = _FINISH.get(self.finish or "stop")
        if stop is None:
            partial.api, partial.usage = "litellm", usage
            events.append(self.assembler.error(E.UpstreamError(
                f"upstream error: Provider finish_reason: {str(self.finish)[:64]}", model=self.model,
                provider=self.model.split("/", 1)[0] if "/" in self.model else None)))
            return events
        message = AssistantMessage(content=[c.model_copy() for c in partial.content], api="litellm",
                                   provider=partial.provider, model=partial.model, usage=usage, stop_reason=stop)
        if message.stop_reason is StopReason.STOP and any(isinstance(c, ToolCall) for c in message.content):
            message.stop_reason = StopReason.TOOL_USE
        self.assembler.final = message
        events.append(DoneEvent(reason=message.stop_reason, message=message))
        return events

    def _usage(self) -> Usage:
        raw = self.usage
        if raw is None:
            return Usage()
        prompt = int(getattr(raw, "prompt_tokens", 0) or 0)
        output = int(getattr(raw, "completion_tokens", 0) or 0)
        details = getattr(raw, "prompt_tokens_details", None)
        cache_read = int(getattr(details, "cached_tokens", 0) or 0) if details is not None else 0
        cache_write = int(getattr(raw, "cache_creation_input_tokens", 0) or 0)
        usage = Usage(input=prompt - cache_read - cache_write, output=output, cache_read=cache_read,
                      cache_write=cache_write, total_tokens=prompt + output)
        usage.cost = self._cost(usage)
        return usage

    def _cost(self, usage: Usage) -> Cost:
        try:
            prompt_cost, completion_cost = _litellm().cost_per_token(
                model=self.model, prompt_tokens=usage.input + usage.cache_read + usage.cache_write,
                completion_tokens=usage.output, cache_read_input_tokens=usage.cache_read)
        except Exception:  # LiteLLM has no price for the model: unknown, not $0
            return Cost(known=False)
        return Cost(input=float(prompt_cost), output=float(completion_cost),
                    total=float(prompt_cost) + float(completion_cost))


def _result(assembler: Assembler) -> AssistantMessage:
    """The message of a finished stream, or its typed error raised (what ``complete`` promises)."""
    final = assembler.final
    assert final is not None
    if final.stop_reason in (StopReason.ERROR, StopReason.ABORTED):
        raise assembler.exception or E.UpstreamError(final.error_message or "the LiteLLM call failed")
    return final


class LiteLLMBackend:
    """Calls through LiteLLM (``litellm.completion``, streamed like pi's openai-completions, also for
    ``complete``), which reads the provider's own env vars."""

    name = "litellm"

    def complete(self, model: str, context: Context, options: StreamOptions | None) -> AssistantMessage:
        assembler = Assembler("", model)
        for _ in self.stream(model, context, options, assembler):
            pass
        return _result(assembler)

    async def acomplete(self, model: str, context: Context, options: StreamOptions | None) -> AssistantMessage:
        assembler = Assembler("", model)
        async for _ in self.astream(model, context, options, assembler):
            pass
        return _result(assembler)

    def stream(self, model: str, context: Context, options: StreamOptions | None,
               assembler: Assembler) -> Iterator[AssistantMessageEvent]:
        kwargs = _kwargs(model, context, options)
        return self._stream(model, kwargs, assembler)

    def _stream(self, model: str, kwargs: dict[str, Any], assembler: Assembler) -> Iterator[AssistantMessageEvent]:
        chunks = _Chunks(model, assembler)
        response: Any = None
        try:
            response = _litellm().completion(**kwargs, stream=True, stream_options={"include_usage": True})
            start = chunks.start()
            if start is not None:
                yield start
            for chunk in response:
                yield from chunks.feed(chunk)
        except Exception as exc:
            yield assembler.error(_error(exc, model))
            return
        finally:
            close = getattr(response, "close", None) or getattr(getattr(response, "completion_stream", None),
                                                                "close", None)
            if close is not None and assembler.final is None:
                close()
        yield from chunks.done()

    def astream(self, model: str, context: Context, options: StreamOptions | None,
                assembler: Assembler) -> AsyncIterator[AssistantMessageEvent]:
        kwargs = _kwargs(model, context, options)
        return self._astream(model, kwargs, assembler)

    async def _astream(self, model: str, kwargs: dict[str, Any],
                       assembler: Assembler) -> AsyncIterator[AssistantMessageEvent]:
        chunks = _Chunks(model, assembler)
        try:
            response = await _litellm().acompletion(**kwargs, stream=True, stream_options={"include_usage": True})
            start = chunks.start()
            if start is not None:
                yield start
            async for chunk in response:
                for event in chunks.feed(chunk):
                    yield event
        except Exception as exc:
            yield assembler.error(_error(exc, model))
            return
        for event in chunks.done():
            yield event
