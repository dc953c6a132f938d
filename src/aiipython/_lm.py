"""PiGatewayLM: a ``dspy.LM`` whose engines call the Pi gateway (DSPy >= 3.4 engine contract).

DSPy owns cache, retries, ``n``, history and streaming; :class:`PiGatewayEngine` and
:class:`AsyncPiGatewayEngine` make one attempt per ``dspy.lm15.Request`` over
:class:`~aiipython._client.PiGatewayClient` (``/lm/complete``, ``/lm/stream``; docs/protocol.md).
What the gateway cannot carry raises ``dspy.lm15.UnsupportedFeatureError`` naming it; gateway
errors become ``dspy.lm15`` errors so DSPy retries rate limits, timeouts and upstream 5xx.
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import dspy
from dspy import lm15

from . import _errors as E

__all__ = ["PiGatewayLM", "PiGatewayEngine", "AsyncPiGatewayEngine", "MODEL_PREFIX", "pi_model_name"]

#: Every PiGatewayLM model string starts with this: ``pi/<provider>/<id>``.
MODEL_PREFIX = "pi/"

# pi's thinking levels (docs/protocol.md options.reasoning); lm15's "max" has no pi level.
_PI_LEVELS = frozenset({"off", "minimal", "low", "medium", "high", "xhigh"})
_FINISH = {"stop": "stop", "length": "length", "toolUse": "tool_call"}
# Request.config fields the gateway has no option for (pi's streamSimple has no top_p/seed/...).
_UNCARRIED_CONFIG = (
    "top_p", "top_k", "seed", "frequency_penalty", "presence_penalty", "response_format", "cache",
    "service_tier", "user_id", "store", "logprobs", "probabilities", "extensions",
)
_CONFIG_DEFAULTS = {"stop": (), "extensions": None}


def pi_model_name(model: str) -> str:
    """``pi/<provider>/<id>`` or ``<provider>/<id>`` -> ``<provider>/<id>`` (what the gateway takes).

    Raises:
        aiipython.ConfigurationError: the name has no ``<provider>/`` part or no id.
    """
    name = model[len(MODEL_PREFIX):] if model.startswith(MODEL_PREFIX) else model
    provider, _, model_id = name.partition("/")
    if not provider or not model_id:
        raise E.ConfigurationError(
            f"model {model!r} is not 'pi/<provider>/<id>' (e.g. 'pi/anthropic/claude-sonnet-4-5'); "
            "`aiipython models` lists the names pi knows"
        )
    return name


# ---------------------------------------------------------------------------------------------
# errors: aiipython -> dspy.lm15 (DSPy projects lm15 errors to its own; engines/errors.py)


def _lm15_error(exc: Exception) -> Exception | None:
    """The ``dspy.lm15`` error for an aiipython/httpx failure, or None to let it through."""
    import httpx

    if isinstance(exc, lm15.LM15Error):
        return None
    if isinstance(exc, httpx.TransportError):
        # The client should have mapped it; never copy its text (it may hold a URL with a token).
        return lm15.TransportError(f"could not reach the Pi gateway ({type(exc).__name__})", provider="pi")
    if not isinstance(exc, E.AiipythonError):
        return None
    meta: dict[str, Any] = {
        "provider": exc.provider or "pi",
        "status": exc.status,
        "request_id": exc.request_id,
        "provider_code": exc.code,
    }
    message = exc.message
    login = "log in with `pi` (then /login) or set the provider's API key variable; `aiipython auth status` shows what pi sees"
    err: lm15.LM15Error
    if isinstance(exc, E.ContextWindowExceededError):
        err = lm15.ContextLengthError(message, **meta)
    elif isinstance(exc, E.RateLimitError):
        err = lm15.RateLimitError(message, retry_after=exc.retry_after, **meta)
    elif isinstance(exc, E.UpstreamAuthError):
        err = lm15.AuthError(message, credential_hint=login, **meta)
    elif isinstance(exc, E.UpstreamError):
        err = lm15.ServerError(message, **meta)
    elif isinstance(exc, E.UpstreamTimeoutError):
        err = lm15.TimeoutError(message, **meta)
    elif isinstance(exc, E.ProviderNotConfiguredError):
        err = lm15.NotConfiguredError(message, credential_hint=login, **meta)
    elif isinstance(exc, E.ModelNotFoundError):
        err = lm15.UnsupportedModelError(message, **meta)
    elif isinstance(exc, E.AmbiguousModelError):
        err = lm15.AmbiguousModelError(message, model=exc.model or "", providers=tuple(exc.candidates), **meta)
    elif isinstance(exc, (E.InvalidRequestError, E.RequestTooLargeError)):
        err = lm15.InvalidRequestError(message, **meta)
    elif isinstance(exc, (E.GatewayExitedError, E.GatewayUnavailableError)):
        err = lm15.TransportError(message, **meta)  # the gateway restarts: worth a retry
    elif isinstance(exc, (E.ConfigurationError, E.GatewayStartError, E.GatewayClosedError, E.AuthenticationError)):
        err = lm15.ConfigurationError(message, **meta)
    elif exc.status is not None and exc.status >= 500 and not isinstance(exc, E.GatewayProtocolError):
        err = lm15.ServerError(message, **meta)
    else:
        err = lm15.ProviderError(message, **meta)
    if exc.candidates and not hasattr(err, "candidates"):
        err.candidates = tuple(exc.candidates)  # type: ignore[attr-defined]
    return err


@contextmanager
def _mapped_errors() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        mapped = _lm15_error(exc)
        if mapped is None:
            raise
        raise mapped from exc


def _unsupported(feature: str, why: str) -> lm15.UnsupportedFeatureError:
    return lm15.UnsupportedFeatureError(
        f"the Pi gateway cannot carry {feature}: {why}", feature=feature, provider="pi"
    )


# ---------------------------------------------------------------------------------------------
# request: lm15 Request -> OpenAI chat messages/tools + gateway options (docs/protocol.md)


def _text_of(parts: tuple[Any, ...], where: str) -> str:
    texts = []
    for index, part in enumerate(parts):
        if not isinstance(part, lm15.TextPart):
            raise _unsupported(f"{where}[{index}]", f"a {part.type} part here; only text is carried")
        texts.append(part.text)
    return "".join(texts)


def _image(part: Any, where: str) -> dict[str, Any]:
    if part.detail not in (None, "auto"):
        raise _unsupported(f"{where}.detail", "pi has no image detail setting")
    if part.data is not None:
        url = f"data:{part.media_type};base64,{part.data}"
    elif part.url is not None:
        url = part.url  # the gateway decides about remote URLs (refused unless enabled)
    else:
        raise _unsupported(where, "an image by file id or path; send it inline (base64 data)")
    return {"type": "image_url", "image_url": {"url": url}}


def _user_content(message: Any, where: str) -> str | list[dict[str, Any]]:
    if all(isinstance(p, lm15.TextPart) for p in message.parts):
        return "".join(p.text for p in message.parts)
    content: list[dict[str, Any]] = []
    for index, part in enumerate(message.parts):
        if isinstance(part, lm15.TextPart):
            content.append({"type": "text", "text": part.text})
        elif isinstance(part, lm15.ImagePart):
            content.append(_image(part, f"{where}.parts[{index}]"))
        else:
            raise _unsupported(f"{where}.parts[{index}]", f"{part.type} input; text and images are carried")
    return content


def _assistant(message: Any, where: str) -> dict[str, Any]:
    texts: list[str] = []
    thinking: list[str] = []
    calls: list[dict[str, Any]] = []
    for index, part in enumerate(message.parts):
        if isinstance(part, lm15.TextPart):
            texts.append(part.text)
        elif isinstance(part, lm15.ThinkingPart):
            thinking.append(part.text)
        elif isinstance(part, lm15.ToolCallPart):
            calls.append({
                "id": part.id,
                "type": "function",
                "function": {"name": part.name, "arguments": json.dumps(part.input)},
            })
        else:
            raise _unsupported(f"{where}.parts[{index}]", f"an assistant {part.type} part")
    row: dict[str, Any] = {"role": "assistant", "content": "".join(texts)}
    if thinking:
        row["reasoning_content"] = "".join(thinking)
    if calls:
        row["tool_calls"] = calls
    return row


def _tool_rows(message: Any, where: str) -> list[dict[str, Any]]:
    rows = []
    for index, part in enumerate(message.parts):
        here = f"{where}.parts[{index}]"
        if part.is_error:
            raise _unsupported(f"{here}.is_error", "the OpenAI tool message has no error flag; put the error in the text")
        rows.append({"role": "tool", "tool_call_id": part.id, "content": _text_of(part.content, f"{here}.content")})
    return rows


def _tool_choice(choice: Any) -> str | dict[str, Any]:
    if choice.parallel is False:
        raise _unsupported("config.tool_choice.parallel", "pi has no switch to forbid parallel tool calls")
    if not choice.allowed:
        return str(choice.mode)
    if choice.mode == "required" and len(choice.allowed) == 1:
        return {"type": "function", "function": {"name": choice.allowed[0]}}
    raise _unsupported("config.tool_choice.allowed", "only one required tool (or none) can be named")


def _options(config: Any) -> dict[str, Any]:
    for name in _UNCARRIED_CONFIG:
        value = getattr(config, name)
        if value != _CONFIG_DEFAULTS.get(name):
            what = f" ({', '.join(sorted(value))})" if name == "extensions" else ""
            raise _unsupported(f"config.{name}", f"pi's model calls take temperature, max_tokens, stop, "
                               f"tool_choice and reasoning only{what}")
    options: dict[str, Any] = {}
    if config.temperature is not None:
        options["temperature"] = config.temperature
    if config.max_tokens is not None:
        options["max_tokens"] = config.max_tokens
    if config.stop:
        options["stop"] = list(config.stop)
    if config.tool_choice is not None:
        options["tool_choice"] = _tool_choice(config.tool_choice)
    reasoning = config.reasoning
    if reasoning is not None:
        if reasoning.effort not in _PI_LEVELS:
            raise _unsupported("config.reasoning.effort", f"{reasoning.effort!r} is not a pi thinking level "
                               f"({', '.join(sorted(_PI_LEVELS))})")
        if reasoning.thinking_budget is not None:
            raise _unsupported("config.reasoning.thinking_budget", "pi sets budgets from the thinking level")
        if reasoning.summary not in (None, "auto"):
            raise _unsupported("config.reasoning.summary", "pi has no summary detail setting")
        options["reasoning"] = reasoning.effort
    return options


def request_body(request: Any) -> dict[str, Any]:
    """A ``dspy.lm15.Request`` -> the ``/lm/complete`` body ``{model, messages, tools?, options?}``.

    Raises:
        dspy.lm15.UnsupportedFeatureError: a part, tool or setting the gateway cannot carry;
            ``feature`` names its path (e.g. ``config.top_p``).
    """
    messages: list[dict[str, Any]] = []
    if request.system is not None:
        system = request.system if isinstance(request.system, str) else _text_of(request.system, "system")
        messages.append({"role": "system", "content": system})
    for index, message in enumerate(request.messages):
        where = f"messages[{index}]"
        if message.role in ("user", "developer"):
            content = _user_content(message, where)
            if message.role == "developer" and not isinstance(content, str):
                raise _unsupported(where, "images in a developer message")
            messages.append({"role": message.role, "content": content})
        elif message.role == "assistant":
            messages.append(_assistant(message, where))
        elif message.role == "tool":
            messages.extend(_tool_rows(message, where))
        else:  # pragma: no cover - lm15 validates roles
            raise _unsupported(where, f"role {message.role!r}")
    tools = []
    for index, tool in enumerate(request.tools):
        if not isinstance(tool, lm15.FunctionTool):
            raise _unsupported(f"tools[{index}]", f"the provider-hosted tool {tool.name!r}; only function tools")
        function: dict[str, Any] = {"name": tool.name, "parameters": tool.parameters}
        if tool.description is not None:
            function["description"] = tool.description
        tools.append({"type": "function", "function": function})
    body: dict[str, Any] = {"model": pi_model_name(request.model), "messages": messages}
    if tools:
        body["tools"] = tools
    options = _options(request.config)
    if options:
        body["options"] = options
    return body


# ---------------------------------------------------------------------------------------------
# response: pi AssistantMessage -> lm15 Response


def _usage(raw: Mapping[str, Any] | None) -> Any:
    """pi usage -> lm15 Usage; DESIGN.md "Usage numbers" (input counts cached tokens too)."""
    raw = raw or {}
    cache_read = int(raw.get("cacheRead") or 0)
    cache_write = int(raw.get("cacheWrite") or 0)
    inputs = int(raw.get("input") or 0) + cache_read + cache_write
    outputs = int(raw.get("output") or 0)
    return lm15.Usage(
        input_tokens=inputs,
        output_tokens=outputs,
        total_tokens=inputs + outputs,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
    )


def _finish(stop_reason: Any) -> str:
    try:
        return _FINISH[stop_reason]
    except (KeyError, TypeError):
        raise lm15.ProviderError(
            f"the Pi gateway answered stopReason {stop_reason!r}, which docs/protocol.md does not allow",
            provider="pi",
        ) from None


def _provider_data(message: Mapping[str, Any], duration_ms: Any) -> dict[str, Any]:
    usage = message.get("usage") or {}
    cost = usage.get("cost") or {}
    data = {
        "stop_reason": message.get("stopReason"),
        "cost_usd": cost.get("total"),
        "cost": dict(cost),
        "api": message.get("api"),
        "provider": message.get("provider"),
        "model": message.get("model"),
        "response_id": message.get("responseId"),
        "duration_ms": duration_ms,
    }
    return {key: value for key, value in data.items() if value is not None}


def _model_label(message: Mapping[str, Any], fallback: str) -> str:
    provider, model = message.get("provider"), message.get("model")
    return f"{provider}/{model}" if provider and model else fallback


def response_from_message(message: Mapping[str, Any], *, model: str, duration_ms: float | None = None) -> Any:
    """pi's ``AssistantMessage`` (``/lm/complete`` ``message``) -> ``dspy.lm15.Response``.

    Thinking blocks become ``ThinkingPart``, text ``TextPart``, tool calls ``ToolCallPart`` (in
    order); usage is in tokens; ``provider_data`` holds ``stop_reason`` and ``cost_usd`` (dollars).
    """
    parts: list[Any] = []
    for index, block in enumerate(message.get("content") or []):
        kind = block.get("type") if isinstance(block, Mapping) else None
        if kind == "text":
            parts.append(lm15.TextPart(block.get("text") or ""))
        elif kind == "thinking":
            parts.append(lm15.ThinkingPart(block.get("thinking") or ""))
        elif kind == "toolCall":
            arguments = block.get("arguments")
            parts.append(lm15.ToolCallPart(
                id=block.get("id") or f"call_{index}",
                name=block["name"],
                input=arguments if isinstance(arguments, dict) else {},
            ))
        else:
            raise lm15.ProviderError(f"the Pi gateway answered a content block of type {kind!r}", provider="pi")
    return lm15.Response(
        id=message.get("responseId") or None,
        model=_model_label(message, model),
        message=lm15.Message.assistant(parts or [lm15.TextPart("")]),
        finish_reason=_finish(message.get("stopReason")),
        usage=_usage(message.get("usage")),
        provider_data=_provider_data(message, duration_ms),
    )


class _StreamMapper:
    """Gateway SSE frames -> lm15 stream events: one start, deltas, one end (on ``done``)."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.started = False
        self.calls: dict[int, dict[str, Any]] = {}

    def feed(self, kind: str, data: Mapping[str, Any]) -> Iterator[Any]:
        if not self.started:
            self.started = True
            started = data.get("model") if kind == "start" else None
            label = f"{started['provider']}/{started['id']}" if isinstance(started, Mapping) else self.model
            yield lm15.StreamStartEvent(model=label)
            if kind == "start":
                return
        index = int(data.get("contentIndex") or 0)
        if kind == "text_delta":
            yield lm15.StreamDeltaEvent(lm15.TextDelta(data.get("delta") or "", part_index=index))
        elif kind == "thinking_delta":
            yield lm15.StreamDeltaEvent(lm15.ThinkingDelta(data.get("delta") or "", part_index=index))
        elif kind == "toolcall_start":
            # The call's name and id go out at once; its arguments when pi has parsed them
            # (toolcall_end), so the assembled call is exactly what /lm/complete would return.
            yield lm15.StreamDeltaEvent(lm15.ToolCallDelta("", part_index=index, id=data.get("id") or None,
                                                           name=data.get("name") or None))
        elif kind == "toolcall_end":
            call = data.get("toolCall") or {}
            arguments = call.get("arguments") if isinstance(call.get("arguments"), dict) else {}
            yield lm15.StreamDeltaEvent(lm15.ToolCallDelta(json.dumps(arguments), part_index=index,
                                                           id=call.get("id") or None, name=call.get("name") or None))
        elif kind == "done":
            message = data.get("message") or {}
            yield lm15.StreamEndEvent(
                finish_reason=_finish(data.get("reason") or message.get("stopReason")),
                usage=_usage(message.get("usage")),
                provider_data=_provider_data(message, data.get("duration_ms")),
            )
        elif kind in ("start", "text_start", "text_end", "thinking_start", "thinking_end", "toolcall_delta"):
            return
        else:
            raise lm15.ProviderError(f"the Pi gateway sent a stream event {kind!r} docs/protocol.md does not define",
                                     provider="pi")


# ---------------------------------------------------------------------------------------------
# engines


class _Gateway:
    """Where calls go (an explicit client, a url+token, or the process gateway) and what pi says
    about each model; shared by a sync/async engine pair and by copies for other models."""

    def __init__(self, client: Any = None, url: str | None = None, token: str | None = None) -> None:
        if client is not None and (url or token):
            raise E.ConfigurationError("pass either client= or gateway_url=/gateway_token=, not both")
        if bool(url) != bool(token):
            raise E.ConfigurationError("gateway_url= and gateway_token= go together (the token is the gateway's "
                                       "AIIPYTHON_GATEWAY_TOKEN)")
        self._client = client
        self._url, self._token = url, token
        self._owned = False
        self._lock = threading.Lock()
        self._models: dict[str, dict[str, Any] | None] = {}

    def client(self) -> Any:
        if self._client is not None:
            return self._client
        from ._client import PiGatewayClient, get_client

        if self._url is None:
            return get_client()  # the process gateway, started on first use and restarted if it died
        with self._lock:
            if self._client is None:
                self._client = PiGatewayClient(url=self._url, token=self._token)
                self._owned = True
            return self._client

    def model_info(self, model: str) -> dict[str, Any] | None:
        """The ``/models`` entry for ``provider/id``, or None when pi does not know it (cached)."""
        if model in self._models:
            return self._models[model]
        with _mapped_errors():
            listing = self.client().list_models()
        provider, _, model_id = model.partition("/")
        found = next((m for m in listing.get("models") or [] if m.get("provider") == provider and m.get("id") == model_id),
                     None)
        with self._lock:
            self._models[model] = found
        return found

    def remember(self, model: str, info: Mapping[str, Any]) -> None:
        with self._lock:
            self._models[model] = dict(info)

    def close(self) -> None:
        with self._lock:
            client, owned = self._client, self._owned
            if owned:
                self._client, self._owned = None, False
        if owned and client is not None:
            client.close()


class _EngineBase:
    def __init__(
        self,
        model: str,
        *,
        client: Any = None,
        gateway_url: str | None = None,
        gateway_token: str | None = None,
        timeout: float | None = None,
        model_info: Mapping[str, Any] | None = None,
        _gateway: _Gateway | None = None,
    ) -> None:
        self.model = pi_model_name(model)
        if timeout is not None and (isinstance(timeout, bool) or not timeout > 0):
            raise E.ConfigurationError(f"timeout={timeout!r} must be a positive number of seconds")
        self.timeout = None if timeout is None else float(timeout)
        self._gateway = _gateway or _Gateway(client, gateway_url, gateway_token)
        if model_info is not None:
            self._gateway.remember(self.model, model_info)

    # Capabilities, read by dspy.LM for a custom engine (dspy/clients/capabilities.py).
    @property
    def supports_function_calling(self) -> bool:
        """Every pi API takes tools; False only when pi does not know the model."""
        info = self._gateway.model_info(self.model)
        return bool(info and info.get("api"))

    @property
    def supports_reasoning(self) -> bool:
        """pi's ``reasoning`` flag for the model (``/models``)."""
        info = self._gateway.model_info(self.model)
        return bool(info and info.get("reasoning"))

    supports_response_schema = False

    @property
    def supported_params(self) -> frozenset[str]:
        params = {"temperature", "max_tokens", "max_completion_tokens", "stop", "stream"}
        if self.supports_function_calling:
            params |= {"tools", "tool_choice"}
        if self.supports_reasoning:
            params.add("reasoning_effort")
        return frozenset(params)

    def _body(self, request: Any) -> dict[str, Any]:
        from dspy.clients.engines.base import validate_request

        validate_request(request)
        body = request_body(request)
        if self.timeout is not None:
            body.setdefault("options", {})["timeout_ms"] = int(self.timeout * 1000)
        return body

    def _call_args(self, body: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (body["model"], body["messages"]), {"tools": body.get("tools"), "options": body.get("options")}

    def for_model(self, model: str) -> Any:
        """An engine of the same kind for another model, on the same gateway."""
        return type(self)(model, timeout=self.timeout, _gateway=self._gateway)

    def dump_state(self) -> dict[str, Any]:
        """JSON state for a saved program: the model and timeout; never a client, url or token."""
        return {"model": self.model, "timeout": self.timeout}

    @classmethod
    def load_state(cls, state: Mapping[str, Any]) -> Any:
        """Rebuild from :meth:`dump_state`; the loaded engine uses the process gateway."""
        return cls(state["model"], timeout=state.get("timeout"))

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        return self  # a connection, like an httpx client: shared by copies of a program

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r})"


class PiGatewayEngine(_EngineBase):
    """One synchronous attempt through the Pi gateway; thread-safe, no per-call state."""

    def complete(self, request: Any) -> Any:
        args, kwargs = self._call_args(self._body(request))
        with _mapped_errors():
            reply = self._gateway.client().complete(*args, **kwargs)
        return response_from_message(reply["message"], model=args[0], duration_ms=reply.get("duration_ms"))

    def stream(self, request: Any) -> Iterator[Any]:
        args, kwargs = self._call_args(self._body(request))
        mapper = _StreamMapper(args[0])
        with _mapped_errors():
            events = self._gateway.client().stream(*args, **kwargs)
            try:
                for event in events:
                    yield from mapper.feed(event.type, event.data or {})
            finally:
                close = getattr(events, "close", None)
                if close is not None:
                    close()

    def close(self) -> None:
        """Close a client this engine created from gateway_url/gateway_token; borrowed ones stay open."""
        self._gateway.close()


class AsyncPiGatewayEngine(_EngineBase):
    """One async attempt through the Pi gateway (the client keeps one connection pool per loop)."""

    async def complete(self, request: Any) -> Any:
        args, kwargs = self._call_args(self._body(request))
        with _mapped_errors():
            reply = await self._gateway.client().acomplete(*args, **kwargs)
        return response_from_message(reply["message"], model=args[0], duration_ms=reply.get("duration_ms"))

    async def stream(self, request: Any) -> AsyncIterator[Any]:
        args, kwargs = self._call_args(self._body(request))
        mapper = _StreamMapper(args[0])
        with _mapped_errors():
            events = self._gateway.client().astream(*args, **kwargs)
            try:
                async for event in events:
                    for item in mapper.feed(event.type, event.data or {}):
                        yield item
            finally:
                aclose = getattr(events, "aclose", None)
                if aclose is not None:
                    await aclose()

    async def aclose(self) -> None:
        self._gateway.close()

    def close(self) -> None:
        self._gateway.close()


# ---------------------------------------------------------------------------------------------
# the LM


class PiGatewayLM(dspy.LM):
    """A ``dspy.LM`` for ``pi/<provider>/<id>`` whose calls go through the Pi gateway."""

    def __init__(
        self,
        model: str,
        *,
        client: Any = None,
        gateway_url: str | None = None,
        gateway_token: str | None = None,
        gateway_timeout: float | None = None,
        model_info: Mapping[str, Any] | None = None,
        engine: Any = None,
        async_engine: Any = None,
        **kwargs: Any,
    ) -> None:
        """Create an LM for a model pi knows.

        Args:
            model: ``pi/<provider>/<id>`` or ``<provider>/<id>`` (e.g. ``anthropic/claude-sonnet-4-5``).
            client: a :class:`~aiipython.PiGatewayClient` to use; default: the process gateway
                (:func:`aiipython.get_client`), started on the first call.
            gateway_url, gateway_token: a running gateway to use instead (both or neither).
            gateway_timeout: seconds one upstream call may take (the gateway's ``timeout_ms``).
            model_info: the model's ``/models`` entry when already known (saves one lookup).
            engine, async_engine: engines from :meth:`dump_state` (``load_state``); not with the above.
            **kwargs: ``dspy.LM`` arguments: ``temperature``, ``max_tokens`` (tokens), ``cache``,
                ``num_retries``, ``callbacks``, ... (``api_key``/``api_base`` are refused: pi owns them).

        Raises:
            aiipython.ConfigurationError: a bad model name or conflicting gateway arguments.
        """
        name = MODEL_PREFIX + pi_model_name(model)
        if engine is None:
            engine = PiGatewayEngine(name, client=client, gateway_url=gateway_url, gateway_token=gateway_token,
                                     timeout=gateway_timeout, model_info=model_info)
        elif client is not None or gateway_url or gateway_token or gateway_timeout is not None:
            raise E.ConfigurationError("pass the gateway either as engine= or as client=/gateway_url=/..., not both")
        if async_engine is None:
            async_engine = AsyncPiGatewayEngine(name, timeout=engine.timeout, _gateway=engine._gateway)
        super().__init__(name, engine=engine, async_engine=async_engine, **kwargs)

    def _get_initial_kwargs(self, *, temperature: Any, max_tokens: Any, **kwargs: Any) -> dict[str, Any]:
        # dspy.LM applies OpenAI's reasoning-model rules to any name whose last segment starts with
        # gpt-5/o1/o3/o4 (temperature 1 only, max_tokens >= 16000, renamed max_completion_tokens).
        # Here pi talks to the provider and knows its rules; an upstream refusal still surfaces as
        # an invalid-request error (docs/backends.md "The gpt-5 / o-series names").
        initial = dict(temperature=temperature, max_tokens=max_tokens, **kwargs)
        if initial.get("rollout_id") is None:
            initial.pop("rollout_id", None)
        return initial

    def copy(self, **kwargs: Any) -> PiGatewayLM:
        if "model" in kwargs and "engine" not in kwargs:
            model = MODEL_PREFIX + pi_model_name(kwargs["model"])
            kwargs["model"] = model
            kwargs["engine"] = self._engine_spec.for_model(model)
            kwargs["async_engine"] = self._async_engine_spec.for_model(model)
        return super().copy(**kwargs)
