"""Conversions for PiGatewayLM: lm15 Request -> gateway body, pi AssistantMessage / SSE frames ->
lm15 Response / stream events, aiipython errors -> ``dspy.lm15`` errors (docs/protocol.md).

Nothing is dropped: a part, tool or setting the gateway cannot carry raises
``dspy.lm15.UnsupportedFeatureError`` whose ``feature`` names its path (``config.top_k``). The
sampling and format settings pi's APIs differ on (``top_p``, ``seed``, penalties, ``user_id``,
``response_format``, ``tool_choice.parallel``) go to the gateway as its options where the model's
pi API carries them (``GET /models`` ``options``) and raise the same error, naming the API, where
it does not.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from dspy import lm15

from . import _errors as E
from ._client import openai_usage
from ._model_names import pi_model_name

__all__ = ["bounded_schema", "request_body", "response_from_message", "StreamMapper",
           "mapped_errors", "lm15_error", "needs_model_options", "DSPY_PARAMS"]


_FINISH = {"stop": "stop", "length": "length", "toolUse": "tool_call"}
# Request.config fields the gateway has no option for at all.
_UNCARRIED_CONFIG = ("top_k", "cache", "service_tier", "store", "logprobs", "probabilities", "extensions")
# Request.config fields -> the gateway option carrying them where the model's pi API has it
# (docs/protocol.md "POST /lm/complete"; GET /models lists each model's ``options``).
_NATIVE_CONFIG = {
    "top_p": "top_p", "seed": "seed", "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty", "user_id": "user", "response_format": "response_format",
}
#: gateway option -> the ``dspy.LM`` call parameter that sets it (``supported_params``).
DSPY_PARAMS = {"top_p": "top_p", "seed": "seed", "presence_penalty": "presence_penalty",
               "frequency_penalty": "frequency_penalty", "user": "user",
               "parallel_tool_calls": "parallel_tool_calls", "response_format": "response_format"}
_CONFIG_DEFAULTS = {"stop": (), "extensions": None}


# ---------------------------------------------------------------------------------------------
# errors: aiipython -> dspy.lm15 (DSPy projects lm15 errors to its own; engines/errors.py)


def lm15_error(exc: Exception) -> Exception | None:
    """The ``dspy.lm15`` error for an aiipython failure, or None to let it through (every HTTP
    failure reaches here as an aiipython error: ``PiGatewayClient`` translates them all)."""
    if not isinstance(exc, E.AiipythonError):
        return None
    meta: dict[str, Any] = {
        "provider": exc.provider or "pi",
        "status": exc.status,
        "request_id": exc.request_id,
        "provider_code": exc.code,
    }
    message = exc.message
    login = (f"log in with `aiipython auth login {exc.provider or '<provider>'}` or set the provider's API key "
             "variable; `aiipython auth status` shows what pi sees")
    err: Exception  # a dspy.lm15.LM15Error (dspy ships no type information)
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
    elif isinstance(exc, E.GatewayOverloadedError):
        err = lm15.ServerError(message, retry_after=exc.retry_after, **meta)  # DSPy waits retry_after
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
def mapped_errors() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        mapped = lm15_error(exc)
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
            raise _unsupported(f"{here}.is_error", "the OpenAI tool message has no error flag; "
                               "put the error in the text")
        row = {"role": "tool", "tool_call_id": part.id, "content": _text_of(part.content, f"{here}.content")}
        if part.name is not None:
            row["name"] = part.name  # the gateway checks it against the call it answers
        rows.append(row)
    return rows


class _Carried:
    """The gateway options one model's pi API carries (``None``: not known, send and let the
    gateway decide), and the refusal for one it does not."""

    def __init__(self, options: Collection[str] | None, api: str | None) -> None:
        self.options = None if options is None else frozenset(options)
        self.api = api

    def check(self, option: str, feature: str) -> str:
        if self.options is not None and option not in self.options:
            raise _unsupported(feature, f"the model's pi API ({self.api or 'unknown'}) has no {option}; it "
                               f"carries {', '.join(sorted(self.options))} (docs/protocol.md, GET /models options)")
        return option


def _tool_choice(choice: Any, carried: _Carried, options: dict[str, Any]) -> str | dict[str, Any]:
    if choice.parallel is False:
        options[carried.check("parallel_tool_calls", "config.tool_choice.parallel")] = False
    if not choice.allowed:
        return str(choice.mode)
    if choice.mode == "required" and len(choice.allowed) == 1:
        return {"type": "function", "function": {"name": choice.allowed[0]}}
    raise _unsupported("config.tool_choice.allowed", "only one required tool (or none) can be named")


def _response_format(value: Mapping[str, Any]) -> dict[str, Any]:
    """lm15's ``{"type": "json_object"}`` / ``{"type": "json_schema", "schema", "name"?, "strict"?}``
    -> the gateway's (OpenAI's) ``{"type": "json_schema", "json_schema": {"name", "schema", "strict"?}}``."""
    if value.get("type") != "json_schema":
        return {"type": value.get("type")}
    schema: dict[str, Any] = {"name": value.get("name") or "response", "schema": value.get("schema")}
    if value.get("strict") is not None:
        schema["strict"] = value["strict"]
    return {"type": "json_schema", "json_schema": schema}


def needs_model_options(config: Any) -> bool:
    """True when ``config`` sets an option only some pi APIs carry, so :func:`request_body` needs
    the model's ``/models`` ``options`` to refuse it clearly."""
    choice = config.tool_choice
    return any(getattr(config, name) is not None for name in _NATIVE_CONFIG) or (
        choice is not None and choice.parallel is False)


def _options(config: Any, carried: _Carried) -> dict[str, Any]:
    for name in _UNCARRIED_CONFIG:
        value = getattr(config, name)
        if value != _CONFIG_DEFAULTS.get(name):
            what = f" ({', '.join(sorted(value))})" if name == "extensions" else ""
            raise _unsupported(f"config.{name}", f"pi's model calls have no {name} setting{what}")
    options: dict[str, Any] = {}
    if config.temperature is not None:
        options["temperature"] = config.temperature
    if config.max_tokens is not None:
        options["max_tokens"] = config.max_tokens
    if config.stop:
        options["stop"] = list(config.stop)
    for name, option in _NATIVE_CONFIG.items():
        value = getattr(config, name)
        if value is not None:
            carried.check(option, f"config.{name}")
            options[option] = _response_format(value) if name == "response_format" else value
    if config.tool_choice is not None:
        options["tool_choice"] = _tool_choice(config.tool_choice, carried, options)
    reasoning = config.reasoning
    if reasoning is not None:
        # The levels a model takes are pi's (/models thinking_levels): the gateway refuses any
        # other with a 400 listing them (dspy.lm15.InvalidRequestError), so none is listed here.
        if reasoning.thinking_budget is not None:
            raise _unsupported("config.reasoning.thinking_budget", "pi sets budgets from the thinking level")
        if reasoning.summary not in (None, "auto"):
            raise _unsupported("config.reasoning.summary", "pi has no summary detail setting")
        options["reasoning"] = reasoning.effort
    return options


def request_body(request: Any, *, model_options: Collection[str] | None = None,
                 api: str | None = None) -> dict[str, Any]:
    """A ``dspy.lm15.Request`` -> the ``/lm/complete`` body ``{model, messages, tools?, options?}``.

    Args:
        request: the lm15 request.
        model_options: the model's ``/models`` ``options`` (the gateway options its pi API
            carries); ``None`` when unknown: every option is sent and the gateway refuses (400)
            one the API lacks.
        api: the model's pi API, for the error message.

    Raises:
        dspy.lm15.UnsupportedFeatureError: a part, tool or setting the gateway cannot carry, or
            one the model's pi API does not (``top_p``, ``seed``, penalties, ``user_id``,
            ``response_format``, ``tool_choice.parallel``); ``feature`` names its path (e.g.
            ``config.response_format``).
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
    options = _options(request.config, _Carried(model_options, api))
    if options:
        body["options"] = options
    return body


# ---------------------------------------------------------------------------------------------
# response: pi AssistantMessage -> lm15 Response


def _usage(raw: Mapping[str, Any] | None) -> Any:
    """pi usage -> lm15 Usage; docs/protocol.md "POST /lm/complete" (input counts cached tokens too)."""
    counts = openai_usage(dict(raw or {}))
    reasoning = (raw or {}).get("reasoning")  # pi >= 0.87: the part of ``output`` spent thinking, when reported
    return lm15.Usage(
        input_tokens=counts["prompt_tokens"],
        output_tokens=counts["completion_tokens"],
        total_tokens=counts["total_tokens"],
        cache_read_tokens=counts["cache_read_tokens"],
        cache_write_tokens=counts["cache_write_tokens"],
        reasoning_tokens=int(reasoning) if isinstance(reasoning, int) and reasoning > 0 else None,
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


class StreamMapper:
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
# the embedded model: a JSON schema that always fits in its answer budget


#: Items an unbounded array may hold in the embedded model's answers (``bounded_schema``).
LOCAL_MAX_ITEMS = 8


def bounded_schema(schema: Any, max_tokens: int) -> Any:
    """A copy of a JSON schema in which every unbounded string gets a ``maxLength`` and every
    unbounded array a ``maxItems`` (:data:`LOCAL_MAX_ITEMS`), sized so that a complete object fits
    in ``max_tokens`` generated tokens (about 3 characters a token, a quarter kept for JSON syntax).

    llama.cpp turns the schema into a grammar, so the embedded 135M model cannot run a string past
    its answer budget and leave DSPy a cut-off object: the reply parses by construction. Enums,
    consts, patterns and bounds already given are kept as they are.
    """
    def slots(node: Any, weight: int) -> int:
        """Open strings in ``node``, an unbounded array's items counted LOCAL_MAX_ITEMS times."""
        if isinstance(node, list):
            return sum(slots(n, weight) for n in node)
        if not isinstance(node, dict):
            return 0
        count = weight if node.get("type") == "string" and not _closed_string(node) else 0
        many = node.get("type") == "array" and "maxItems" not in node
        for key, value in node.items():
            if key not in ("enum", "const", "required"):
                count += slots(value, weight * LOCAL_MAX_ITEMS if many and key == "items" else weight)
        return count

    budget = max(16, (max_tokens * 3 * 3) // 4)
    length = max(16, budget // max(1, slots(schema, 1)))

    def bound(node: Any) -> Any:
        if isinstance(node, list):
            return [bound(n) for n in node]
        if not isinstance(node, dict):
            return node
        out = {k: (v if k in ("enum", "const", "required") else bound(v)) for k, v in node.items()}
        if out.get("type") == "string" and not _closed_string(out):
            out["maxLength"] = length
        if out.get("type") == "array" and "maxItems" not in out:
            out["maxItems"] = LOCAL_MAX_ITEMS
        return out

    return bound(schema)


def _closed_string(node: Mapping[str, Any]) -> bool:
    return any(key in node for key in ("enum", "const", "maxLength", "pattern", "format"))
