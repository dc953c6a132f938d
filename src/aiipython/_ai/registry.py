"""Model registry and costs: pi's catalog (``GET /models``), enriched by models.dev.

pi is the source of truth for what can be called: ids, cost, context window, max output,
reasoning, input modalities, thinking levels and ``available`` (pi has credentials).
models.dev (``modelsdev.load_snapshot``) adds family, knowledge cutoff, release date, status,
open weights, output modalities and the tool-call / structured-output / attachment /
temperature flags, matched on ``(provider, id)``. Costs follow pi-ai's ``calculateCost``.
"""

from __future__ import annotations

import threading
import time
import weakref
from typing import Any

from pydantic import BaseModel, Field

from .. import _errors as E
from .._client import PiGatewayClient
from .modelsdev import load_snapshot
from .types import Cost, Usage

__all__ = ["Model", "ModelCost", "ModelLimits", "ModelCapabilities", "ModelModalities", "CAPABILITIES",
           "get_model", "get_models", "calculate_cost", "estimate_cost"]

#: Valid ``capability=`` values of :func:`get_models`.
CAPABILITIES = ("reasoning", "tool_call", "structured_output", "attachment", "temperature")
#: Seconds one read of pi's catalog is reused (credentials and models.json may change).
_CATALOG_TTL = 10.0


class ModelCost(BaseModel):
    """Dollars per million tokens (pi's ``cost``). ``known`` is False when pi's listing gives the
    model no ``cost``: the rates are then 0.0 meaning "unknown", not "free" (pi itself prices
    every model it lists; a model pi prices at 0, e.g. a local one, is known and free)."""

    input: float = 0.0
    output: float = 0.0
    cache_read: float = 0.0
    cache_write: float = 0.0
    known: bool = True


class ModelLimits(BaseModel):
    """Tokens: the context window and the most output one call may ask for."""

    context: int = 0
    output: int = 0


class ModelCapabilities(BaseModel):
    """What the model can do (``reasoning`` from pi; the others from models.dev when it knows the
    model, else: tools yes, structured output no, attachment = image input, temperature yes)."""

    reasoning: bool = False
    tool_call: bool = True
    structured_output: bool = False
    attachment: bool = False
    temperature: bool = True


class ModelModalities(BaseModel):
    """Input (pi's: what pi can send, ``text`` / ``image``) and output (models.dev's) modalities."""

    input: list[str] = Field(default_factory=lambda: ["text"])
    output: list[str] = Field(default_factory=lambda: ["text"])


class Model(BaseModel):
    """One model pi can call, with models.dev's facts when it has them (else ``None``)."""

    id: str
    provider: str
    name: str
    api: str = ""
    cost: ModelCost = Field(default_factory=ModelCost)
    limits: ModelLimits = Field(default_factory=ModelLimits)
    capabilities: ModelCapabilities = Field(default_factory=ModelCapabilities)
    modalities: ModelModalities = Field(default_factory=ModelModalities)
    thinking_levels: list[str] = Field(default_factory=lambda: ["off"])
    available: bool = False
    family: str | None = None
    knowledge_cutoff: str | None = None
    release_date: str | None = None
    status: str | None = None
    open_weights: bool | None = None

    @property
    def full_id(self) -> str:
        """``provider/id``, the name every function here takes."""
        return f"{self.provider}/{self.id}"


def _model(entry: dict[str, Any], dev: dict[str, Any] | None) -> Model:
    found_cost = entry.get("cost")
    cost: dict[str, Any] = found_cost if isinstance(found_cost, dict) else {}
    inputs = [str(x) for x in entry.get("input") or ["text"]]
    d = dev or {}
    found = d.get("modalities")
    modalities: dict[str, Any] = found if isinstance(found, dict) else {}
    return Model(
        id=str(entry["id"]), provider=str(entry["provider"]), name=str(entry.get("name") or entry["id"]),
        api=str(entry.get("api") or ""),
        cost=ModelCost(input=cost.get("input") or 0.0, output=cost.get("output") or 0.0,
                       cache_read=cost.get("cache_read") or 0.0, cache_write=cost.get("cache_write") or 0.0,
                       known=isinstance(found_cost, dict)),
        limits=ModelLimits(context=entry.get("context_window") or 0, output=entry.get("max_tokens") or 0),
        capabilities=ModelCapabilities(
            reasoning=bool(entry.get("reasoning")), tool_call=bool(d.get("tool_call", True)),
            structured_output=bool(d.get("structured_output", False)),
            attachment=bool(d.get("attachment", "image" in inputs)), temperature=bool(d.get("temperature", True))),
        modalities=ModelModalities(input=inputs, output=[str(x) for x in modalities.get("output") or ["text"]]),
        thinking_levels=[str(x) for x in entry.get("thinking_levels") or ["off"]],
        available=bool(entry.get("available")),
        family=d.get("family"), knowledge_cutoff=d.get("knowledge"), release_date=d.get("release_date"),
        status=d.get("status"), open_weights=d.get("open_weights"),
    )


#: Per client (weakly): when read, the models.dev index used, pi's listing, the Model objects.
_cache: weakref.WeakKeyDictionary[PiGatewayClient, tuple[float, object, dict[str, Any], list[Model]]] = (
    weakref.WeakKeyDictionary())
_cache_lock = threading.Lock()


def _catalog(client: PiGatewayClient | None) -> tuple[dict[str, Any], list[Model]]:
    """pi's ``/models`` listing and its :class:`Model` objects (reused for a few seconds)."""
    if client is None:
        from .._client import get_client

        client = get_client()
    now = time.monotonic()
    dev = load_snapshot()
    found = _cache.get(client)
    if found is not None and now - found[0] < _CATALOG_TTL and found[1] is dev:
        return found[2], found[3]
    listing = client.list_models()
    models = [_model(m, dev.get((str(m.get("provider")), str(m.get("id")))))
              for m in listing.get("models") or [] if isinstance(m, dict) and m.get("id") and m.get("provider")]
    with _cache_lock:
        _cache[client] = (now, dev, listing, models)
    return listing, models


def get_models(provider: str | None = None, capability: str | None = None, modality: str | None = None,
               min_context: int | None = None, max_cost_input: float | None = None,
               available: bool | None = None, *, client: PiGatewayClient | None = None) -> list[Model]:
    """The models pi knows that pass every filter given, in pi's order.

    Args:
        provider: pi's provider id (``anthropic``).
        capability: one of ``reasoning``, ``tool_call``, ``structured_output``, ``attachment``,
            ``temperature``.
        modality: an input modality (``image``).
        min_context: tokens; the context window is at least this.
        max_cost_input: dollars per million input tokens; at most this (a model without a known
            price is left out).
        available: only models pi has credentials for (True) or has not (False).
        client: the gateway to ask (default the process's).

    Raises:
        aiipython.ConfigurationError (a ValueError): an unknown capability (the message lists the
            valid ones).
    """
    if capability is not None and capability not in CAPABILITIES:
        raise E.ConfigurationError(f"unknown capability {capability!r}; use one of: {', '.join(CAPABILITIES)}")
    _, models = _catalog(client)
    return [m for m in models
            if (provider is None or m.provider == provider)
            and (capability is None or getattr(m.capabilities, capability))
            and (modality is None or modality in m.modalities.input)
            and (min_context is None or m.limits.context >= min_context)
            and (max_cost_input is None or (m.cost.known and m.cost.input <= max_cost_input))
            and (available is None or m.available == available)]


def get_model(name: str, *, client: PiGatewayClient | None = None) -> Model:
    """The model ``name``: ``provider/id``, or a bare id that one provider has (``make_lm``'s rule).

    Raises:
        aiipython.AmbiguousModelError: several providers have the bare id (``candidates`` lists them).
        aiipython.ModelNotFoundError: pi does not know it (``candidates``: close matches).
    """
    from .._factory import _resolve  # the one name-resolution rule

    listing, models = _catalog(client)
    full, _ = _resolve(name, listing, auto=False)
    return next(m for m in models if m.full_id == full)


def calculate_cost(model: str | Model, usage: Usage, *, client: PiGatewayClient | None = None) -> Cost:
    """What ``usage`` costs on ``model``, in dollars, by pi-ai's ``calculateCost``: each count times
    its price per million tokens (``usage.input`` excludes cached tokens, as pi counts).

    Returns:
        A :class:`Cost`; ``Cost(known=False)`` (amounts 0.0) when the model has no known price
        (``model.cost.known`` False).

    Raises:
        As :func:`get_model` for a ``str`` model.
    """
    m = get_model(model, client=client) if isinstance(model, str) else model
    rates = m.cost
    if not rates.known:
        return Cost(known=False)
    cost = Cost(input=rates.input / 1e6 * usage.input, output=rates.output / 1e6 * usage.output,
                cache_read=rates.cache_read / 1e6 * usage.cache_read,
                cache_write=rates.cache_write / 1e6 * usage.cache_write)
    cost.total = cost.input + cost.output + cost.cache_read + cost.cache_write
    return cost


def estimate_cost(model: str | Model, input_tokens: int, output_tokens: int = 0, cached_tokens: int = 0, *,
                  client: PiGatewayClient | None = None) -> float | None:
    """Dollars a call would cost. ``input_tokens`` counts the whole prompt (OpenAI's
    ``prompt_tokens``), of which ``cached_tokens`` are read from the provider's cache.

    Returns:
        Dollars, or None when the model has no known price (never a 0 that means "unknown").

    Raises:
        aiipython.ConfigurationError (a ValueError): a negative count, or ``cached_tokens`` above
            ``input_tokens``.
        As :func:`get_model` for a ``str`` model.
    """
    if not 0 <= cached_tokens <= input_tokens or output_tokens < 0:
        raise E.ConfigurationError("token counts must be >= 0, and cached_tokens at most input_tokens")
    usage = Usage(input=input_tokens - cached_tokens, output=output_tokens, cache_read=cached_tokens)
    cost = calculate_cost(model, usage, client=client)
    return cost.total if cost.known else None
