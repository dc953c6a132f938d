"""``aiipython cost``, ``aiipython models info`` and ``aiipython models sync``: the CLI over the
typed API's registry and cost functions (docs/python_api.md). ``--json`` prints data as JSON."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from ._ai.types import Cost

__all__ = ["cost", "models_info", "models_sync"]


def _money(dollars: float) -> str:
    return f"${dollars:.6f}" if 0 < dollars < 0.01 else f"${dollars:.4f}" if dollars < 1 else f"${dollars:,.2f}"


#: What ``cost`` prints for a model without a known price (never $0).
_UNKNOWN = "unknown (no price for this model)"


@click.command("info")
@click.argument("model")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def models_info(model: str, as_json: bool) -> None:
    """Everything known about MODEL (provider/id, or a bare id one provider has).

    \b
    Example:
      aiipython models info anthropic/claude-sonnet-4-5
    """
    from ._ai.registry import get_model

    m = get_model(model)
    if as_json:
        click.echo(json.dumps({"model": m.full_id, **m.model_dump()}, indent=2))
        return
    caps = [name for name, on in m.capabilities.model_dump().items() if on]
    rows = [("Name", m.name), ("Provider", m.provider), ("Context", f"{m.limits.context:,} tokens"),
            ("Max output", f"{m.limits.output:,} tokens"),
            ("Cost", f"${m.cost.input:g}/1M input, ${m.cost.output:g}/1M output, ${m.cost.cache_read:g}/1M cache "
                     f"read, ${m.cost.cache_write:g}/1M cache write" if m.cost.known else _UNKNOWN),
            ("Capabilities", ", ".join(caps) or "-"),
            ("Modalities", f"{', '.join(m.modalities.input)} (input) -> {', '.join(m.modalities.output)} (output)"),
            ("Thinking levels", ", ".join(m.thinking_levels)),
            ("Knowledge cutoff", m.knowledge_cutoff or "-"), ("Released", m.release_date or "-"),
            ("Family", m.family or "-"), ("Available", "yes" if m.available else "no (no credentials in pi)")]
    click.echo(m.full_id)
    for label, value in rows:
        click.echo(f"  {label + ':':<18}{value}")


@click.command("sync")
@click.option("--url", default=None, help="Where to read models.dev's api.json (default https://models.dev/api.json).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def models_sync(url: str | None, as_json: bool) -> None:
    """Refresh the models.dev snapshot in the user cache (the packaged one is used until then)."""
    from ._ai.modelsdev import MODELS_DEV_URL, sync_models

    result = sync_models(url or MODELS_DEV_URL)
    if as_json:
        click.echo(json.dumps({"path": str(result.path), "providers": result.providers, "models": result.models}))
    else:
        click.echo(f"Fetched {result.models} models across {result.providers} providers; saved to {result.path}")


@click.command()
@click.argument("models", nargs=-1, required=True)
@click.option("--input", "input_tokens", type=click.IntRange(min=0), required=True,
              help="Prompt tokens (cached included).")
@click.option("--output", "output_tokens", type=click.IntRange(min=0), default=0, show_default=True,
              help="Output tokens.")
@click.option("--cached", "cached_tokens", type=click.IntRange(min=0), default=0, show_default=True,
              help="Prompt tokens read from the provider's cache.")
@click.option("--compare", is_flag=True, help="Several MODELS: a table, cheapest first.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def cost(models: tuple[str, ...], input_tokens: int, output_tokens: int, cached_tokens: int, compare: bool,
         as_json: bool) -> None:
    """What a call would cost on MODEL (pi's prices, $ per 1M tokens).

    \b
    Examples:
      aiipython cost anthropic/claude-sonnet-4-5 --input 10000 --output 2000
      aiipython cost --compare anthropic/claude-sonnet-4-5 openai/gpt-4o --input 10000 --output 2000
    """
    from ._ai.registry import calculate_cost, get_model
    from ._ai.types import Usage

    if len(models) > 1 and not compare:
        raise click.UsageError("several models: add --compare for a table, cheapest first")
    if cached_tokens > input_tokens:
        raise click.UsageError("--cached counts part of --input, so it cannot be larger")
    usage = Usage(input=input_tokens - cached_tokens, output=output_tokens, cache_read=cached_tokens)
    rows = [(m.full_id, calculate_cost(m, usage)) for m in (get_model(name) for name in models)]
    rows.sort(key=lambda row: (not row[1].known, row[1].total))  # unknown prices last
    if as_json:
        click.echo(json.dumps({"input_tokens": input_tokens, "output_tokens": output_tokens,
                               "cached_tokens": cached_tokens,
                               "costs": [{"model": name, **_cost_json(c)} for name, c in rows]}, indent=2))
        return
    if not compare:
        name, c = rows[0]
        if not c.known:
            click.echo(f"Estimated cost: {_UNKNOWN} on {name}")
            return
        click.echo(f"Estimated cost: {_money(c.total)} ({_money(c.input + c.cache_read)} input + "
                   f"{_money(c.output)} output) on {name}")
        return
    width = max(len(name) for name, _ in rows)
    for name, c in rows:
        click.echo(f"  {name:<{width}}  {_money(c.total) if c.known else _UNKNOWN}")


def _cost_json(c: Cost) -> dict[str, Any]:
    """A cost's dollars as ``cost --json`` prints them: every amount null when the price is unknown
    (as ``ask --json`` prints ``cost_usd``), with ``known``."""
    amounts = c.model_dump(exclude={"known"})
    return {**(amounts if c.known else dict.fromkeys(amounts)), "known": c.known}
