"""PiGatewayLM: a ``dspy.LM`` whose engines call the Pi gateway (DSPy >= 3.4 engine contract).

DSPy owns cache, retries, ``n``, history and streaming; :class:`PiGatewayEngine` and
:class:`AsyncPiGatewayEngine` make one attempt per ``dspy.lm15.Request`` over
:class:`~aiipython._client.PiGatewayClient` (``/lm/complete``, ``/lm/stream``; docs/protocol.md).
Conversions live in ``_lm_convert``: what the gateway (or the model's pi API: ``top_p``, ``seed``,
penalties, ``response_format``, ... per ``/models`` ``options``) cannot carry raises
``dspy.lm15.UnsupportedFeatureError``; gateway errors become ``dspy.lm15`` errors, so DSPy retries
rate limits, timeouts and upstream 5xx.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import dspy

from . import _errors as E
from ._gateway_options import GatewayOptions, GatewayTarget, LMClient
from ._lm_convert import (
    DSPY_PARAMS,
    StreamMapper,
    bounded_schema,
    mapped_errors,
    needs_model_options,
    request_body,
    response_from_message,
)
from ._local_model import LOCAL_MAX_TOKENS
from ._model_names import LOCAL_MODEL, dspy_model_name, pi_model_name, strip_pi_prefix
from ._usage import fill_cost

__all__ = ["PiGatewayLM", "PiGatewayEngine", "AsyncPiGatewayEngine"]


class _EngineBase:
    """What both engines share: the model they describe, the gateway target, the per-call timeout."""

    def __init__(self, model: str, *, target: GatewayTarget | None = None, timeout: float | None = None,
                 model_info: Mapping[str, Any] | None = None) -> None:
        """
        Args:
            model: ``pi/<provider>/<id>`` or ``<provider>/<id>``.
            target: the gateway (``GatewayOptions(...).target()``); default the process's gateway.
            timeout: seconds one upstream call may take (the gateway's ``timeout_ms``).
            model_info: the model's ``/models`` entry when already known.

        Raises:
            aiipython.ConfigurationError: a bad model name or timeout.
        """
        self.model = pi_model_name(model)
        self.timeout = GatewayOptions(timeout=timeout).timeout
        self._target = target if target is not None else GatewayTarget()
        if model_info is not None:
            self._target.remember(self.model, model_info)

    def _model_info(self) -> dict[str, Any] | None:
        with mapped_errors():
            return self._target.model_info(self.model)

    # Capabilities, read by dspy.LM for a custom engine (dspy/clients/capabilities.py).
    @property
    def supports_function_calling(self) -> bool:
        """Every pi API takes tools; False only when pi does not know the model."""
        info = self._model_info()
        return bool(info and info.get("api"))

    @property
    def supports_reasoning(self) -> bool:
        """pi's ``reasoning`` flag for the model (``/models``)."""
        info = self._model_info()
        return bool(info and info.get("reasoning"))

    @property
    def supports_response_schema(self) -> bool:
        """True when the model's pi API carries ``response_format`` (``/models`` ``options``), so
        DSPy's JSONAdapter sends a JSON schema (``json_schema``) instead of prompting for JSON."""
        info = self._model_info()
        return bool(info and "response_format" in (info.get("options") or ()))

    @property
    def supported_params(self) -> frozenset[str]:
        """The ``dspy.LM`` call parameters this model takes: the ones every pi API has, plus
        ``top_p``, ``seed``, penalties, ``user``, ``parallel_tool_calls`` and ``response_format``
        where the model's pi API carries them (``/models`` ``options``)."""
        params = {"temperature", "max_tokens", "max_completion_tokens", "stop", "stream"}
        if self.supports_function_calling:
            params |= {"tools", "tool_choice"}
        if self.supports_reasoning:
            params.add("reasoning_effort")
        info = self._model_info()
        params |= {DSPY_PARAMS[o] for o in (info.get("options") or ()) if o in DSPY_PARAMS} if info else set()
        return frozenset(params)

    def _body(self, request: Any) -> dict[str, Any]:
        from dspy.clients.engines.base import validate_request

        validate_request(request)
        carried: Any = None
        api = None
        if needs_model_options(request.config):
            info = self._model_info()
            if info is not None and isinstance(info.get("options"), list):
                carried, api = info["options"], info.get("api")
        body = request_body(request, model_options=carried, api=api)
        if self.model == LOCAL_MODEL:
            _bound_local_schema(body)
        if self.timeout is not None:
            body.setdefault("options", {})["timeout_ms"] = int(self.timeout * 1000)
        return body

    def _call_args(self, body: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (body["model"], body["messages"]), {"tools": body.get("tools"), "options": body.get("options")}

    def for_model(self, model: str) -> Any:
        """An engine of the same kind for another model, on the same gateway."""
        return type(self)(model, timeout=self.timeout, target=self._target)

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


def _bound_local_schema(body: dict[str, Any]) -> None:
    """The embedded model's ``json_schema`` gets string and array bounds that fit its answer budget
    (:func:`~aiipython._lm_convert.bounded_schema`), so its reply is a complete object."""
    options = body.get("options") or {}
    spec = (options.get("response_format") or {}).get("json_schema")
    if isinstance(spec, dict) and isinstance(spec.get("schema"), dict):
        budget = options.get("max_tokens") or LOCAL_MAX_TOKENS
        options["response_format"] = {**options["response_format"],
                                      "json_schema": {**spec, "schema": bounded_schema(spec["schema"], budget)}}


class PiGatewayEngine(_EngineBase):
    """One synchronous attempt through the Pi gateway; thread-safe, no per-call state."""

    def complete(self, request: Any) -> Any:
        """``dspy.lm15.Request`` -> ``dspy.lm15.Response`` via ``/lm/complete``; raises ``dspy.lm15`` errors."""
        args, kwargs = self._call_args(self._body(request))
        with mapped_errors():
            reply = self._target.client().complete(*args, **kwargs)
        return response_from_message(reply["message"], model=args[0], duration_ms=reply.get("duration_ms"))

    def stream(self, request: Any) -> Iterator[Any]:
        """lm15 stream events (one start, deltas, one end) via ``/lm/stream``; raises on failure."""
        args, kwargs = self._call_args(self._body(request))
        mapper = StreamMapper(args[0])
        with mapped_errors():
            events = self._target.client().stream(*args, **kwargs)
            try:
                for event in events:
                    yield from mapper.feed(event.type, event.data or {})
            finally:
                close = getattr(events, "close", None)
                if close is not None:
                    close()

    def close(self) -> None:
        """Close a client this engine created from gateway_url/gateway_token; borrowed ones stay open."""
        self._target.close()


class AsyncPiGatewayEngine(_EngineBase):
    """One async attempt through the Pi gateway (the client keeps one connection pool per loop)."""

    async def complete(self, request: Any) -> Any:
        """Async :meth:`PiGatewayEngine.complete`."""
        args, kwargs = self._call_args(self._body(request))
        with mapped_errors():
            reply = await self._target.client().acomplete(*args, **kwargs)
        return response_from_message(reply["message"], model=args[0], duration_ms=reply.get("duration_ms"))

    async def stream(self, request: Any) -> AsyncIterator[Any]:
        """Async :meth:`PiGatewayEngine.stream`."""
        args, kwargs = self._call_args(self._body(request))
        mapper = StreamMapper(args[0])
        with mapped_errors():
            events = self._target.client().astream(*args, **kwargs)
            try:
                async for event in events:
                    for item in mapper.feed(event.type, event.data or {}):
                        yield item
            finally:
                aclose = getattr(events, "aclose", None)
                if aclose is not None:
                    await aclose()

    async def aclose(self) -> None:
        """As :meth:`PiGatewayEngine.close`."""
        self._target.close()

    def close(self) -> None:
        """As :meth:`PiGatewayEngine.close`."""
        self._target.close()


# ---------------------------------------------------------------------------------------------
# the LM


#: dspy.LM arguments that name a connection; on the Pi backend pi owns those.
_CONNECTION_KWARGS = ("api_key", "api_base", "base_url")


def refuse_connection_kwargs(model: str, kwargs: Mapping[str, Any]) -> None:
    """Raise when ``kwargs`` carry a key or endpoint for ``model`` on the Pi backend.

    Raises:
        aiipython.ConfigurationError: one says ``pi owns the credentials`` and how to give them.
    """
    given = [k for k in _CONNECTION_KWARGS if kwargs.get(k) is not None]
    if not given:
        return
    provider = strip_pi_prefix(model).split("/", 1)[0] or "<provider>"
    raise E.ConfigurationError(
        f"{', '.join(f'{k}=' for k in given)} cannot be used with the Pi backend: pi owns the credentials and "
        f"endpoints; use `aiipython auth login {provider}` or the provider's env var (e.g. "
        f"{provider.upper().replace('-', '_')}_API_KEY), a models.json provider for another endpoint, or "
        "backend='litellm' to hand the key to LiteLLM")


class PiGatewayLM(dspy.LM):
    """A ``dspy.LM`` for ``pi/<provider>/<id>`` whose calls go through the Pi gateway."""

    def __init__(
        self,
        model: str,
        *,
        client: LMClient | None = None,
        gateway_url: str | None = None,
        gateway_token: str | None = None,
        gateway_timeout: float | None = None,
        model_info: Mapping[str, Any] | None = None,
        engine: Any = None,
        async_engine: Any = None,
        target: GatewayTarget | None = None,
        **kwargs: Any,
    ) -> None:
        """Create an LM for a model pi knows.

        Args:
            model: ``pi/<provider>/<id>`` or ``<provider>/<id>`` (e.g. ``anthropic/claude-sonnet-4-5``).
            client: a :class:`~aiipython.PiGatewayClient` (any :class:`LMClient`) to use; default:
                the process gateway (:func:`aiipython.get_client`), started on the first call.
            gateway_url, gateway_token: a running gateway to use instead (both or neither).
            gateway_timeout: seconds one upstream call may take (the gateway's ``timeout_ms``).
            model_info: the model's ``/models`` entry when already known (saves one lookup).
            engine, async_engine: engines from :meth:`dump_state` (``load_state``); not with the above.
            target: a :class:`GatewayTarget` shared with other LMs (``make_lm`` passes the one it
                asked about the model); instead of ``client``/``gateway_url``/``gateway_token``.
            **kwargs: ``dspy.LM`` arguments: ``temperature``, ``max_tokens`` (tokens), ``cache``,
                ``num_retries``, ``callbacks``, ... (``api_key``/``api_base`` are refused: pi owns them).

        Raises:
            aiipython.ConfigurationError: a bad model name, conflicting gateway arguments, or
                ``api_key``/``api_base``/``base_url`` (pi owns credentials and endpoints).
        """
        name = dspy_model_name(model)
        refuse_connection_kwargs(name, kwargs)
        options = GatewayOptions(client=client, url=gateway_url, token=gateway_token, timeout=gateway_timeout)
        if engine is None:
            if target is not None and (options.client is not None or options.url):
                raise E.ConfigurationError("pass the gateway either as target= or as client=/gateway_url=/..., "
                                           "not both")
            engine = PiGatewayEngine(name, timeout=options.timeout, model_info=model_info,
                                     target=target if target is not None else options.target())
        elif options.given or target is not None:
            raise E.ConfigurationError("pass the gateway either as engine= or as client=/gateway_url=/..., not both")
        if async_engine is None:
            async_engine = AsyncPiGatewayEngine(name, timeout=engine.timeout, target=engine._target)
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
        """``dspy.LM.copy``; a new ``model`` gets engines for it on the same gateway."""
        if "model" in kwargs and "engine" not in kwargs:
            model = dspy_model_name(kwargs["model"])
            kwargs["model"] = model
            kwargs["engine"] = self._engine_spec.for_model(model)
            kwargs["async_engine"] = self._async_engine_spec.for_model(model)
        copied: PiGatewayLM = super().copy(**kwargs)
        return copied

    def update_history(self, entry: dict[str, Any]) -> None:
        """Record a call as ``dspy.LM`` does, with ``entry["cost"]`` in dollars from pi's price
        (DSPy records None for custom engines) and the call added to :func:`aiipython.usage_summary`."""
        fill_cost(entry)
        super().update_history(entry)
