"""``aiipython smoke``: one tiny call per configured provider, one line each.

Tells at a glance which providers work, and whether a failure is the gateway's or the upstream's
(the error type is the project's: ``UpstreamError`` is the provider, ``GatewayError`` subclasses
the bridge). Each call asks for a few tokens under a bounded timeout.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from ._errors import AiipythonError, ModelNotFoundError

if TYPE_CHECKING:
    from ._client import PiGatewayClient

__all__ = ["SmokeResult", "pick_models", "smoke"]

#: The prompt each call sends, and how many tokens it may answer with.
SMOKE_PROMPT = "Reply with the single word OK."
SMOKE_MAX_TOKENS = 16
#: Seconds one smoke call may take.
SMOKE_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class SmokeResult:
    """One provider's smoke call: ``latency_s`` in seconds, ``cost_usd`` in dollars (pi's)."""

    provider: str
    model: str
    ok: bool
    latency_s: float
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    error_type: str | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        """``provider  model  ok|FAIL  latency  tokens  cost  [error]`` for a terminal."""
        status = "ok" if self.ok else "FAIL"
        tokens = f"{self.input_tokens}+{self.output_tokens} tok" if self.input_tokens is not None else "-"
        cost = f"${self.cost_usd:.6f}" if self.cost_usd is not None else "-"
        head = f"{self.provider:<20} {self.model:<40} {status:<4} {self.latency_s:>7.2f}s  {tokens:<14} {cost}"
        return head if self.ok else f"{head}  {self.error_type}: {self.error}"


def _price(model: dict[str, Any]) -> float:
    cost = model.get("cost") or {}
    return float(cost.get("input") or 0) + float(cost.get("output") or 0)


def pick_models(catalog: dict[str, Any], *, provider: str | None = None, model: str | None = None) -> list[str]:
    """The ``provider/id`` to smoke-test per configured provider, in provider order.

    ``model`` wins (one call). Otherwise, per provider with credentials (``available`` in
    ``GET /models``), pi's default model when it belongs to that provider, else the provider's
    cheapest model (input + output $ per 1M tokens; ties by id).

    Raises:
        ModelNotFoundError: ``provider`` names no provider with credentials.
    """
    if model is not None:
        return [model]
    default = catalog.get("default_model") or {}
    by_provider: dict[str, list[dict[str, Any]]] = {}
    for m in catalog.get("models", []):
        if m.get("available") and (provider is None or m.get("provider") == provider):
            by_provider.setdefault(str(m["provider"]), []).append(m)
    if provider is not None and provider not in by_provider:
        known = sorted({str(m["provider"]) for m in catalog.get("models", []) if m.get("available")})
        raise ModelNotFoundError(
            f"provider {provider!r} has no credentials or no models; configured providers: {', '.join(known) or 'none'}"
        )
    picked = []
    for prov in sorted(by_provider):
        models = by_provider[prov]
        ids = {str(m["id"]) for m in models}
        if default.get("provider") == prov and default.get("id") in ids:
            picked.append(f"{prov}/{default['id']}")
        else:
            best = min(models, key=lambda m: (_price(m), str(m["id"])))
            picked.append(f"{prov}/{best['id']}")
    return picked


def _one(client: PiGatewayClient, name: str, timeout_s: float) -> SmokeResult:
    provider = name.split("/", 1)[0]
    started = time.perf_counter()
    try:
        reply = client.complete(name, [{"role": "user", "content": SMOKE_PROMPT}],
                                options={"max_tokens": SMOKE_MAX_TOKENS, "timeout_ms": int(timeout_s * 1000)})
    except AiipythonError as exc:
        return SmokeResult(provider, name, False, round(time.perf_counter() - started, 3),
                           error_type=type(exc).__name__, error=str(exc))
    latency = round(time.perf_counter() - started, 3)
    usage = reply.get("message", {}).get("usage") or {}
    cost = (usage.get("cost") or {}).get("total")
    prompt = int(usage.get("input", 0)) + int(usage.get("cacheRead", 0)) + int(usage.get("cacheWrite", 0))
    return SmokeResult(provider, name, True, latency, input_tokens=prompt, output_tokens=int(usage.get("output", 0)),
                       cost_usd=float(cost) if cost is not None else None)


def smoke(*, provider: str | None = None, model: str | None = None, client: PiGatewayClient | None = None,
          timeout_s: float = SMOKE_TIMEOUT_S) -> list[SmokeResult]:
    """One call of at most 16 output tokens per configured provider (or just ``provider`` / ``model``).

    Returns one ``SmokeResult`` per call, failures included (never raised per call).

    Raises:
        ModelNotFoundError: ``provider`` has no credentials.
        GatewayError: the gateway itself cannot be reached or started.
    """
    if client is None:
        from ._client import get_client

        client = get_client()
    names = pick_models(client.list_models(), provider=provider, model=model)
    return [_one(client, name, timeout_s) for name in names]
