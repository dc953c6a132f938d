"""Cost in DSPy's history for PiGatewayLM, and a process-wide usage total.

DSPy's own ``dspy.LM`` puts a call's dollar cost in ``lm.history[i]["cost"]`` (LiteLLM's price
table or lm15's estimate); for a custom engine it records ``None``. pi prices every call itself
(``AssistantMessage.usage.cost``, dollars), and the engine carries it in
``Response.provider_data["cost_usd"]``. :func:`fill_cost` copies it into the history entry before
DSPy records it, so the DSPy-native total works unchanged::

    sum(e["cost"] for e in lm.history if e["cost"] is not None)

:func:`usage_summary` is the same total for every PiGatewayLM of the process in one call, without
DSPy's history limits and without double-counting cache hits.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, MutableMapping
from typing import Any

__all__ = ["fill_cost", "usage_summary", "reset_usage"]

_lock = threading.Lock()
_totals: dict[str, dict[str, Any]] = {}


def _responses(entry: Mapping[str, Any]) -> list[Any]:
    response = entry.get("response")
    if isinstance(response, (list, tuple)):
        return list(response)
    return [response] if response is not None else []


def _reported_cost(responses: list[Any]) -> float | None:
    costs = []
    for response in responses:
        data = getattr(response, "provider_data", None)
        value = data.get("cost_usd") if isinstance(data, Mapping) else None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None  # one candidate without a price: the total is unknown, not smaller
        costs.append(float(value))
    return sum(costs) if costs else None


def fill_cost(entry: MutableMapping[str, Any]) -> None:
    """Fill a DSPy history entry's ``cost`` (dollars) from pi's price and add the call to the total.

    ``entry`` is what ``dspy.LM.update_history`` receives: ``response`` is one ``dspy.lm15.Response``
    (or a tuple of them for ``n > 1``), ``usage`` DSPy's token counts (empty for a cache hit).
    Sets ``entry["cost"]`` to the sum of ``provider_data["cost_usd"]`` when every response has
    one (a cache hit keeps the cost of the call it replays, as in ``dspy.LM``) and
    ``entry["cost_details"]`` to ``{"kind": "reported", "currency": "USD", "source": "pi"}``.
    Never raises on odd entries: pricing is advisory.
    """
    cost = _reported_cost(_responses(entry))
    if entry.get("cost") is None and cost is not None:
        entry["cost"] = cost
        entry["cost_details"] = {"kind": "reported", "currency": "USD", "source": "pi"}
    usage = entry.get("usage") or {}
    cached = not usage  # DSPy records no usage for a cache hit: nothing was billed
    model = str(entry.get("model") or "")
    with _lock:
        row = _totals.setdefault(model, {"calls": 0, "cached_calls": 0, "cost_usd": 0.0, "unpriced_calls": 0,
                                         "input_tokens": 0, "output_tokens": 0, "total_tokens": 0})
        if cached:
            row["cached_calls"] += 1
            return
        row["calls"] += 1
        if cost is None:
            row["unpriced_calls"] += 1
        else:
            row["cost_usd"] += cost
        for key, names in (("input_tokens", ("prompt_tokens", "input_tokens")),
                           ("output_tokens", ("completion_tokens", "output_tokens")),
                           ("total_tokens", ("total_tokens",))):
            value = next((usage[n] for n in names if isinstance(usage.get(n), int)), 0)
            row[key] += value


def usage_summary() -> dict[str, Any]:
    """What this process's PiGatewayLM calls used since start (or :func:`reset_usage`).

    Returns:
        ``{"calls", "cached_calls", "unpriced_calls", "cost_usd", "input_tokens", "output_tokens",
        "total_tokens", "by_model": {"pi/<provider>/<id>": {same keys}}}``. ``calls`` are calls
        that reached the model (each of ``n`` candidates and each retry DSPy made after a failure
        counts once per successful reply); ``cached_calls`` were answered by DSPy's cache and cost
        nothing; ``cost_usd`` is pi's price in US dollars (``unpriced_calls`` had none);
        tokens as in docs/backends.md "Usage". Calls made with ``dspy.settings.disable_history``
        are not seen (DSPy records no history entry then).
    """
    with _lock:
        by_model = {model: dict(row) for model, row in sorted(_totals.items())}
    keys = ("calls", "cached_calls", "unpriced_calls", "cost_usd", "input_tokens", "output_tokens", "total_tokens")
    total: dict[str, Any] = {key: sum(row[key] for row in by_model.values()) for key in keys}
    total["cost_usd"] = float(total["cost_usd"])
    total["by_model"] = by_model
    return total


def reset_usage() -> None:
    """Start :func:`usage_summary`'s totals again from zero (history entries are not touched)."""
    with _lock:
        _totals.clear()
