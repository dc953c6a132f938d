"""``complete`` / ``stream`` / ``quick`` and their async twins (pi-ai's ``stream.ts`` in Python).

Every function takes ``model`` (pi's ``provider/id``, a unique bare id, or None for the default
model ``make_lm`` would use), a :class:`Context` (or a prompt string) and options, plus
``backend=`` (``auto`` | ``pi`` | ``litellm``; default ``AIIPYTHON_LM_BACKEND``) and ``client=``
(a :class:`PiGatewayClient`; default the process's gateway). ``complete`` raises aiipython's
typed errors; ``stream`` reports a failed call as its last event, ``ErrorEvent``. A bad
argument (a context that is not a :class:`Context` or ``str``, options that are not
:class:`StreamOptions`, an unknown thinking level) raises :class:`aiipython.ConfigurationError`
(a ``ValueError``) at once, on every function.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from .. import _errors as E
from .backends import aresolve, resolve
from .events import Assembler, AssistantMessageEvent, AssistantMessageEventStream, AsyncAssistantMessageEventStream
from .types import AssistantMessage, Context, SimpleStreamOptions, StreamOptions, ThinkingLevel, user

if TYPE_CHECKING:
    from .._client import PiGatewayClient

__all__ = ["complete", "stream", "complete_simple", "stream_simple", "quick",
           "acomplete", "astream", "acomplete_simple", "astream_simple"]


def _context(context: Context | str) -> Context:
    if isinstance(context, str):
        return Context(messages=[user(context)])
    if not isinstance(context, Context):
        raise E.ConfigurationError(f"context must be a Context (aiipython.ctx(...)) or a prompt str, "
                                   f"not {type(context).__name__}")
    return context


def _options(options: StreamOptions | None) -> StreamOptions | None:
    if options is not None and not isinstance(options, StreamOptions):
        raise E.ConfigurationError(f"options must be a StreamOptions or SimpleStreamOptions (or None), not "
                                   f"{type(options).__name__}; e.g. StreamOptions(max_tokens=100)")
    return options


def _level(reasoning: ThinkingLevel | str | None) -> ThinkingLevel | None:
    """``quick``'s ``reasoning`` as a level; None is off."""
    if reasoning is None or isinstance(reasoning, ThinkingLevel):
        return reasoning
    try:
        return ThinkingLevel(reasoning)
    except ValueError:
        levels = ", ".join(repr(level.value) for level in ThinkingLevel)
        raise E.ConfigurationError(f"unknown reasoning level {reasoning!r}: use one of {levels}, or None for "
                                   "no thinking (pi's 'off')") from None


def _simple_options(**fields: Any) -> SimpleStreamOptions:
    try:
        return SimpleStreamOptions(**fields)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise E.ConfigurationError(f"bad quick() argument: {problems}") from None


def _assembler(backend_model: str) -> Assembler:
    provider, _, model_id = backend_model.partition("/")
    return Assembler(provider if model_id else "", model_id or provider)


def complete(model: str | None, context: Context | str, options: StreamOptions | None = None, *,
             backend: str | None = None, client: PiGatewayClient | None = None) -> AssistantMessage:
    """One call; the complete reply.

    Returns:
        An :class:`AssistantMessage`: ``.text``, ``.tool_calls``, ``.thinking_text``, ``usage``
        (tokens; ``usage.cost`` in dollars), ``stop_reason`` (``stop``, ``length`` or ``toolUse``).

    Raises:
        aiipython.ConfigurationError: an unknown backend, no model, a context or options of the
            wrong type, or an option the backend cannot carry.
        aiipython.GatewayError subclasses (docs/protocol.md "Errors"): ``ModelNotFoundError``,
            ``ProviderNotConfiguredError``, ``RateLimitError``, ``UpstreamError`` (an upstream 5xx,
            or a reply the provider's content filter withheld), ...
    """
    checked, opts = _context(context), _options(options)  # before resolve(): it may start the gateway
    chosen, name = resolve(model, backend, client)
    return chosen.complete(name, checked, opts)


def stream(model: str | None, context: Context | str, options: StreamOptions | None = None, *,
           backend: str | None = None, client: PiGatewayClient | None = None) -> AssistantMessageEventStream:
    """One streamed call: iterate the returned stream for events, or call its ``.result()``.

    Events: ``start``, then ``text_*`` / ``thinking_*`` / ``toolcall_*`` (start, deltas, end) per
    content block, then ``done`` — or ``error`` (with the partial message and the typed error in
    ``.exception``) when the call fails. Breaking out of the loop aborts the upstream call.

    Raises:
        aiipython.ConfigurationError (and errors choosing the backend) at once; call failures
        arrive as the ``error`` event instead.
    """
    checked, opts = _context(context), _options(options)
    chosen, name = resolve(model, backend, client)
    assembler = _assembler(name)
    events = chosen.stream(name, checked, opts, assembler)
    return AssistantMessageEventStream(events, lambda: assembler.error(None, aborted=True))


def complete_simple(model: str | None, context: Context | str, options: SimpleStreamOptions | None = None, *,
                    backend: str | None = None, client: PiGatewayClient | None = None) -> AssistantMessage:
    """:func:`complete` with a thinking level (``options.reasoning``)."""
    return complete(model, context, options, backend=backend, client=client)


def stream_simple(model: str | None, context: Context | str, options: SimpleStreamOptions | None = None, *,
                  backend: str | None = None, client: PiGatewayClient | None = None) -> AssistantMessageEventStream:
    """:func:`stream` with a thinking level (``options.reasoning``)."""
    return stream(model, context, options, backend=backend, client=client)


def quick(prompt: str, model: str | None = None, *, system: str | None = None, temperature: float | None = None,
          max_tokens: int | None = None, reasoning: ThinkingLevel | str | None = None,
          backend: str | None = None, client: PiGatewayClient | None = None) -> AssistantMessage:
    """One prompt, one reply: ``quick("What is 2+2?").text``. ``model`` None is the default model.

    Args:
        reasoning: a :class:`ThinkingLevel` or its value (``minimal``, ``low``, ``medium``,
            ``high``, ``xhigh``, ``max``); None (the default) is no thinking.

    Raises:
        aiipython.ConfigurationError: an unknown ``reasoning`` level (the message lists the
            accepted ones) or a ``temperature`` / ``max_tokens`` of the wrong type; then as
            :func:`complete`.
    """
    if not isinstance(prompt, str):
        raise E.ConfigurationError(f"prompt must be a str, not {type(prompt).__name__}")
    options = _simple_options(temperature=temperature, max_tokens=max_tokens, reasoning=_level(reasoning))
    return complete(model, Context(system_prompt=system, messages=[user(prompt)]), options,
                    backend=backend, client=client)


async def acomplete(model: str | None, context: Context | str, options: StreamOptions | None = None, *,
                    backend: str | None = None, client: PiGatewayClient | None = None) -> AssistantMessage:
    """Async :func:`complete` (same result and errors). The first call for a model chooses its
    backend in a worker thread (it may start the gateway), so the event loop is never blocked."""
    checked, opts = _context(context), _options(options)
    chosen, name = await aresolve(model, backend, client)
    return await chosen.acomplete(name, checked, opts)


def astream(model: str | None, context: Context | str, options: StreamOptions | None = None, *,
            backend: str | None = None,
            client: PiGatewayClient | None = None) -> AsyncAssistantMessageEventStream:
    """Async :func:`stream`: ``async for event in astream(...)``, or ``await ....result()``.

    A bad ``context`` or ``options`` raises here, as in :func:`stream`. The backend is chosen when
    iteration starts, in a worker thread (the first call may start the gateway, about a second),
    so the event loop is never blocked, and an unknown model raises there (as :func:`complete`).
    """
    checked, opts = _context(context), _options(options)
    current = [_assembler(model or "")]  # replaced once the backend names the model

    async def events() -> AsyncIterator[AssistantMessageEvent]:
        chosen, name = await aresolve(model, backend, client)
        current[0] = assembler = _assembler(name)
        inner = chosen.astream(name, checked, opts, assembler)
        try:
            async for event in inner:
                yield event
        finally:  # leaving early must close the inner stream too: it aborts the upstream call
            aclose = getattr(inner, "aclose", None)
            if aclose is not None:
                await aclose()

    return AsyncAssistantMessageEventStream(events(), lambda: current[0].error(None, aborted=True))


async def acomplete_simple(model: str | None, context: Context | str, options: SimpleStreamOptions | None = None,
                           *, backend: str | None = None, client: PiGatewayClient | None = None) -> AssistantMessage:
    """Async :func:`complete_simple`."""
    return await acomplete(model, context, options, backend=backend, client=client)


def astream_simple(model: str | None, context: Context | str, options: SimpleStreamOptions | None = None, *,
                   backend: str | None = None,
                   client: PiGatewayClient | None = None) -> AsyncAssistantMessageEventStream:
    """Async :func:`stream_simple`."""
    return astream(model, context, options, backend=backend, client=client)
