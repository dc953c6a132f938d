"""The backends of the typed API behind one small interface, and the choice between them.

:class:`Backend` is the contract: ``complete``/``acomplete`` return an :class:`AssistantMessage`
or raise aiipython's typed errors; ``stream``/``astream`` yield events and end with ``done`` or
``error`` (never raise for a failed call). :class:`PiBackend` calls the gateway
(``PiGatewayClient``); ``litellm_backend.LiteLLMBackend`` calls LiteLLM. :func:`resolve` picks
one with ``make_lm``'s rule (``_factory.choose_backend``), once per model and settings.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import Any, Protocol

from .. import _errors as E
from .._client import PiGatewayClient  # cheap (httpx), and the cache is keyed by it
from .events import Assembler, AssistantMessageEvent
from .types import (
    AssistantMessage,
    Context,
    ImageContent,
    SimpleStreamOptions,
    StreamOptions,
    TextContent,
    ThinkingContent,
    ToolCall,
    ToolResultMessage,
    UserMessage,
)

__all__ = ["Backend", "PiBackend", "resolve", "openai_messages", "openai_tools"]

logger = logging.getLogger("aiipython")

#: StreamOptions fields the gateway carries (docs/protocol.md ``options``), by our name.
_GATEWAY_OPTIONS = ("temperature", "max_tokens", "session_id", "timeout_ms", "stop", "tool_choice")


class Backend(Protocol):
    """One way to call a model: one attempt per call, no retries, no cache."""

    name: str

    def complete(self, model: str, context: Context, options: StreamOptions | None) -> AssistantMessage: ...

    def stream(self, model: str, context: Context, options: StreamOptions | None,
               assembler: Assembler) -> Iterator[AssistantMessageEvent]: ...

    async def acomplete(self, model: str, context: Context, options: StreamOptions | None) -> AssistantMessage: ...

    def astream(self, model: str, context: Context, options: StreamOptions | None,
                assembler: Assembler) -> AsyncIterator[AssistantMessageEvent]: ...


# -- Context -> the gateway's OpenAI chat messages (docs/protocol.md "Messages") -------------------

def _image_url(image: ImageContent) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": f"data:{image.mime_type};base64,{image.data}"}}


def _user(message: UserMessage) -> dict[str, Any]:
    if isinstance(message.content, str):
        return {"role": "user", "content": message.content}
    parts = [{"type": "text", "text": p.text} if isinstance(p, TextContent) else _image_url(p) for p in message.content]
    return {"role": "user", "content": parts}


def _assistant(message: AssistantMessage) -> dict[str, Any]:
    row: dict[str, Any] = {"role": "assistant",
                           "content": "".join(c.text for c in message.content if isinstance(c, TextContent))}
    thinking = "".join(c.thinking for c in message.content if isinstance(c, ThinkingContent))
    if thinking:
        row["reasoning_content"] = thinking
    calls = [c for c in message.content if isinstance(c, ToolCall)]
    if calls:
        row["tool_calls"] = [{"id": c.id, "type": "function",
                              "function": {"name": c.name, "arguments": json.dumps(c.arguments)}} for c in calls]
    return row


def _tool_result(message: ToolResultMessage, where: str) -> dict[str, Any]:
    if any(isinstance(c, ImageContent) for c in message.content):
        raise E.InvalidRequestError(f"{where}: an image in a tool result cannot be carried by the gateway "
                                    "(text only); send it in a user message instead")
    text = "".join(c.text for c in message.content if isinstance(c, TextContent))
    return {"role": "tool", "tool_call_id": message.tool_call_id, "content": text}


def openai_messages(context: Context) -> list[dict[str, Any]]:
    """``context`` as OpenAI chat messages (what ``/lm/*`` and LiteLLM take)."""
    rows: list[dict[str, Any]] = []
    if context.system_prompt:
        rows.append({"role": "system", "content": context.system_prompt})
    for i, message in enumerate(context.messages):
        if isinstance(message, UserMessage):
            rows.append(_user(message))
        elif isinstance(message, AssistantMessage):
            rows.append(_assistant(message))
        else:
            rows.append(_tool_result(message, f"context.messages[{i}]"))
    return rows


def openai_tools(context: Context) -> list[dict[str, Any]] | None:
    """``context.tools`` as OpenAI function tools, or None."""
    if not context.tools:
        return None
    return [{"type": "function", "function": {"name": t.name, "description": t.description,
                                              "parameters": t.parameters}} for t in context.tools]


def gateway_options(options: StreamOptions | None) -> dict[str, Any] | None:
    """The gateway's ``options`` object; an option it cannot carry is an error naming it."""
    if options is None:
        return None
    out: dict[str, Any] = {}
    for field in _GATEWAY_OPTIONS:
        value = getattr(options, field)
        if value is not None:
            out[field] = value
    if isinstance(options, SimpleStreamOptions) and options.reasoning is not None:
        out["reasoning"] = options.reasoning.value
    extra = [f for f in ("cache_retention", "headers", "api_key", "max_retries") if getattr(options, f) is not None]
    if isinstance(options, SimpleStreamOptions) and options.thinking_budgets is not None:
        extra.append("thinking_budgets")
    if extra:
        raise E.ConfigurationError(
            f"option {', '.join(extra)} cannot be carried by the Pi gateway (pi owns credentials, headers and "
            "budgets per model); leave it unset, or use backend='litellm'")
    return out or None


class PiBackend:
    """Calls through the Pi gateway (``POST /lm/complete`` and ``/lm/stream``)."""

    name = "pi"

    def __init__(self, client: PiGatewayClient) -> None:
        self.client = client

    def complete(self, model: str, context: Context, options: StreamOptions | None) -> AssistantMessage:
        reply = self.client.complete(model, openai_messages(context), tools=openai_tools(context),
                                     options=gateway_options(options))
        return _message(reply)

    async def acomplete(self, model: str, context: Context, options: StreamOptions | None) -> AssistantMessage:
        reply = await self.client.acomplete(model, openai_messages(context), tools=openai_tools(context),
                                            options=gateway_options(options))
        return _message(reply)

    def stream(self, model: str, context: Context, options: StreamOptions | None,
               assembler: Assembler) -> Iterator[AssistantMessageEvent]:
        body = (openai_messages(context), openai_tools(context), gateway_options(options))
        return self._stream(model, body, assembler)

    def _stream(self, model: str, body: tuple[Any, ...], assembler: Assembler) -> Iterator[AssistantMessageEvent]:
        messages, tools, options = body
        frames = self.client.stream(model, messages, tools=tools, options=options)
        try:
            for frame in frames:
                event = assembler.feed(frame.type, frame.data)
                if event is not None:
                    yield event
        except E.AiipythonError as exc:
            yield assembler.error(exc)
        finally:
            getattr(frames, "close", lambda: None)()  # closes the connection: pi aborts the upstream call

    def astream(self, model: str, context: Context, options: StreamOptions | None,
                assembler: Assembler) -> AsyncIterator[AssistantMessageEvent]:
        body = (openai_messages(context), openai_tools(context), gateway_options(options))
        return self._astream(model, body, assembler)

    async def _astream(self, model: str, body: tuple[Any, ...],
                       assembler: Assembler) -> AsyncIterator[AssistantMessageEvent]:
        messages, tools, options = body
        frames = self.client.astream(model, messages, tools=tools, options=options)
        try:
            async for frame in frames:
                event = assembler.feed(frame.type, frame.data)
                if event is not None:
                    yield event
        except E.AiipythonError as exc:
            yield assembler.error(exc)
        finally:
            aclose = getattr(frames, "aclose", None)
            if aclose is not None:
                await aclose()


def _message(reply: dict[str, Any]) -> AssistantMessage:
    message = AssistantMessage.model_validate(reply["message"])
    if message.duration_ms is None and isinstance(reply.get("duration_ms"), (int, float)):
        message.duration_ms = float(reply["duration_ms"])
    return message


# -- the choice -----------------------------------------------------------------------------------

#: Decisions per client (weakly: a closed client's entries go with it); ``None`` = the process gateway.
_by_client: weakref.WeakKeyDictionary[PiGatewayClient, dict[tuple[Any, ...], tuple[Backend, str]]] = (
    weakref.WeakKeyDictionary())
_default: dict[tuple[Any, ...], tuple[Backend, str]] = {}
_cache_lock = threading.Lock()


def _key(model: str | None, backend: str | None) -> tuple[str | None, ...]:
    return (model, backend, os.environ.get("AIIPYTHON_LM_BACKEND"), os.environ.get("AIIPYTHON_MODEL"))


async def aresolve(model: str | None, backend: str | None,
                   client: PiGatewayClient | None) -> tuple[Backend, str]:
    """:func:`resolve` for the async twins: a decision not yet made (it may start the gateway
    and read ``GET /models``, about a second the first time) runs in a worker thread, so the
    event loop keeps serving other tasks meanwhile; a decided one is returned at once."""
    cache = _default if client is None else _by_client.get(client)
    found = cache.get(_key(model, backend)) if cache is not None else None
    if found is not None:
        return found
    return await asyncio.to_thread(resolve, model, backend, client)


def resolve(model: str | None, backend: str | None, client: PiGatewayClient | None) -> tuple[Backend, str]:
    """(the backend, the model name on it) by ``make_lm``'s rule (``_factory.choose_backend``).

    Decided once per (model, backend, ``AIIPYTHON_LM_BACKEND``, ``AIIPYTHON_MODEL``, client) and
    process, as ``make_lm`` decides once per LM; a fallback to LiteLLM logs one warning.
    """
    key = _key(model, backend)
    cache = _default if client is None else _by_client.get(client)
    found = cache.get(key) if cache is not None else None
    if found is not None:
        return found
    from .._factory import choose_backend  # the one rule, shared with make_lm
    from .._gateway_options import GatewayOptions

    with _cache_lock:
        if cache is None:
            assert client is not None
            cache = _by_client.setdefault(client, {})
        found = cache.get(key)
        if found is not None:
            return found
        wanted = (backend or os.environ.get("AIIPYTHON_LM_BACKEND") or "auto").strip().lower()
        options = GatewayOptions(client=client) if client is not None and wanted != "litellm" else None
        choice = choose_backend(model, backend=backend, gateway=options)
        chosen: Backend
        if choice.backend == "pi":
            from .._client import get_client

            chosen = PiBackend(client if client is not None else get_client())
        else:
            if choice.reason:
                logger.warning(
                    "aiipython: using LiteLLM for %r because %s. Set AIIPYTHON_LM_BACKEND=pi to make this an "
                    "error, or AIIPYTHON_LM_BACKEND=litellm to choose LiteLLM without this warning.",
                    choice.model, choice.reason.rstrip("."))
            from .litellm_backend import LiteLLMBackend

            chosen = LiteLLMBackend()
        found = cache[key] = (chosen, choice.model)
    return found
