"""The ``aiipython`` command line (click): ask, models, auth, gateway, serve, demo.

Exit codes (README "Command line"): 0 success, 1 the request could not be done (unknown model, no
credentials, provider error, Node/gateway/local model missing or broken), 2 a usage or configuration
error. Every error is one message naming the fix.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import click

from ._cli_auth import auth_login, auth_logout
from ._cli_errors import ErrorMappingGroup
from ._cli_gateway import gateway, serve
from ._cli_litellm import litellm_config, smoke
from ._cli_models import cost, models_info, models_sync
from ._settings import BACKENDS, load_settings

__all__ = ["main", "cli"]

def _env_setup() -> None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


@click.group(cls=ErrorMappingGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--lm-backend", type=click.Choice(BACKENDS), default=None,
              help="auto (default: Pi gateway, else LiteLLM), pi, or litellm. Env: AIIPYTHON_LM_BACKEND.")
@click.option("--model", default=None, help="Model, e.g. anthropic/claude-sonnet-4-5. Env: AIIPYTHON_MODEL.")
@click.version_option(package_name="aiipython")
@click.pass_context
def cli(ctx: click.Context, lm_backend: str | None, model: str | None) -> None:
    """Use Pi's models and credentials from Python and DSPy.

    \b
    Examples:
      aiipython ask "What is DSPy?"
      aiipython --lm-backend pi --model local/smollm2-135m ask "Say hi" --json
      aiipython models --available
      aiipython demo
    """
    _env_setup()
    load_settings()  # a bad AIIPYTHON_* variable is one usage error (exit 2) on every command
    ctx.obj = {"backend": lm_backend, "model": model}


def _make_lm(ctx: click.Context, *, announce: bool = False, **kwargs: Any) -> Any:
    """``make_lm`` for the command; ``announce``: its info line (which model and why) goes to stderr."""
    import logging

    from ._factory import make_lm

    if not announce:
        return make_lm(ctx.obj["model"], backend=ctx.obj["backend"], **kwargs)
    log = logging.getLogger("aiipython")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        return make_lm(ctx.obj["model"], backend=ctx.obj["backend"], **kwargs)
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


def _pi_model(lm: Any) -> str | None:
    """pi's ``provider/id`` of a PiGatewayLM, else None."""
    from ._lm import PiGatewayLM
    from ._model_names import strip_pi_prefix

    if isinstance(lm, PiGatewayLM):
        return strip_pi_prefix(str(lm.model))
    return None


@cli.command()
@click.argument("prompt", required=False)
@click.option("--system", default=None, help="A system prompt.")
@click.option("--max-tokens", type=click.IntRange(1), default=None, help="Upper bound on output tokens.")
@click.option("--temperature", type=click.FloatRange(0, 2), default=None)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (text, usage, cost) instead of streaming.")
@click.pass_context
def ask(ctx: click.Context, prompt: str | None, system: str | None, max_tokens: int | None,
        temperature: float | None, as_json: bool) -> None:
    """Ask the model PROMPT; the answer streams to stdout (on both backends).

    PROMPT `-`, or no PROMPT with stdin not a terminal, reads the prompt from stdin.

    \b
    Examples:
      aiipython ask "What is DSPy?"
      git diff | aiipython ask --system "Review this diff"
      aiipython ask "2+2?" --json

    --json prints {backend, model, text, stop_reason, usage: {prompt_tokens, completion_tokens,
    total_tokens, cache_read_tokens, cache_write_tokens, cost_usd}, latency_s}, the same on both
    backends: stop_reason is pi's (stop, length, toolUse; LiteLLM's finish_reason mapped to it as
    the typed API maps it), cost_usd in US dollars rounded to 1e-10 (null when LiteLLM has no
    price for the model). A failed call, a provider's content filter included, is an error (exit
    1) on both backends.
    """
    if prompt is None or prompt == "-":
        if prompt is None and sys.stdin.isatty():
            raise click.UsageError("no PROMPT: give it as an argument, or pipe it on stdin (`-` reads stdin)")
        prompt = sys.stdin.read()
        if not prompt.strip():
            raise click.UsageError("the prompt read from stdin is empty")
    lm = _make_lm(ctx, announce=True)
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    model = _pi_model(lm)
    started = time.perf_counter()
    if model is not None:
        result = _ask_pi(model, messages, max_tokens, temperature, stream=not as_json)
    else:
        result = _ask_lm(lm, messages, max_tokens, temperature, stream=not as_json)
    cost = result["usage"].get("cost_usd")
    result["usage"]["cost_usd"] = round(cost, 10) if isinstance(cost, float) else cost
    result["latency_s"] = round(time.perf_counter() - started, 4)
    if as_json:
        click.echo(json.dumps(result, indent=2))
    elif not result["text"].endswith("\n"):
        click.echo()


def _ask_pi(model: str, messages: list[dict[str, Any]], max_tokens: int | None, temperature: float | None,
            *, stream: bool) -> dict[str, Any]:
    from ._stream_text import stream_text

    def echo(delta: str) -> None:
        if stream:
            click.echo(delta, nl=False)
            sys.stdout.flush()

    options = {k: v for k, v in (("max_tokens", max_tokens), ("temperature", temperature)) if v is not None}
    answer = stream_text(model, messages, options=options or None, on_text=echo)
    return {"backend": "pi", "model": model, "text": answer.text, "stop_reason": answer.stop_reason,
            "usage": answer.usage}


def _ask_lm(lm: Any, messages: list[dict[str, Any]], max_tokens: int | None, temperature: float | None,
            *, stream: bool) -> dict[str, Any]:
    """One call of the StreamingLM's model through the typed API's LiteLLM backend
    (``aiipython.stream(..., backend="litellm")``), so ``ask`` and the typed API share one mapping
    of finish reasons, usage and cost. A failed call (a provider error, a content filter) raises
    its typed error, as on pi.

    Raises:
        aiipython.AiipythonError subclasses: the stream's ``error`` event's exception.
    """
    from . import _errors as E
    from ._ai.api import stream as typed_stream
    from ._ai.events import DoneEvent, ErrorEvent, TextDeltaEvent
    from ._ai.types import Context, StreamOptions
    from ._client import openai_usage

    system = next((m["content"] for m in messages if m["role"] == "system"), None)
    context = Context.model_validate({"system_prompt": system,
                                      "messages": [m for m in messages if m["role"] != "system"]})
    options = StreamOptions(
        max_tokens=max_tokens or lm.kwargs.get("max_tokens") or lm.kwargs.get("max_completion_tokens"),
        temperature=temperature if temperature is not None else lm.kwargs.get("temperature"))
    message = None
    for event in typed_stream(str(lm.model), context, options, backend="litellm"):
        if isinstance(event, TextDeltaEvent) and stream:
            click.echo(event.delta, nl=False)
            sys.stdout.flush()
        elif isinstance(event, ErrorEvent):
            raise event.exception or E.UpstreamError(event.error.error_message or "the LiteLLM call failed")
        elif isinstance(event, DoneEvent):
            message = event.message
    assert message is not None  # a stream ends with done or error
    return {"backend": "litellm", "model": str(lm.model), "text": message.text,
            "stop_reason": message.stop_reason.value, "usage": openai_usage(message.usage.to_pi())}


def _default_name(data: dict[str, Any]) -> str | None:
    default = data.get("default_model")
    return f"{default['provider']}/{default['id']}" if isinstance(default, dict) else None


def _default_warning(data: dict[str, Any]) -> None:
    if data.get("default_model_warning"):
        click.echo(f"warning: {data['default_model_warning']}", err=True)


@cli.group(invoke_without_command=True)
@click.option("--available", is_flag=True, help="Only models pi has credentials for.")
@click.option("--provider", default=None, help="Only this provider's models.")
@click.option("-q", "--query", "queries", multiple=True, metavar="TEXT",
              help="Only models whose provider/id or name contains TEXT (any case); repeat to AND them.")
@click.option("--capability", default=None, metavar="NAME",
              help="Only models with it: reasoning, tool_call, structured_output, attachment or temperature.")
@click.option("--modality", default=None, metavar="NAME", help="Only models taking this input (text, image).")
@click.option("--min-context", type=click.IntRange(min=1), default=None, metavar="TOKENS",
              help="Only models whose context window is at least TOKENS.")
@click.option("--max-cost-input", type=click.FloatRange(min=0), default=None, metavar="DOLLARS",
              help="Only models whose input costs at most DOLLARS per 1M tokens.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def models(ctx: click.Context, available: bool, provider: str | None, queries: tuple[str, ...],
           capability: str | None, modality: str | None, min_context: int | None, max_cost_input: float | None,
           as_json: bool) -> None:
    """List the models pi knows (provider/id, context, cost in $ per 1M tokens).

    On a terminal a table; piped, one provider/id per line (for grep, fzf, xargs). The model pi
    starts with (make_lm()'s default) is marked `default` in the table and in --json;
    `aiipython models default [MODEL]` shows it or sets it.

    \b
    Examples:
      aiipython models -q claude -q sonnet
      aiipython models --available --provider anthropic
      aiipython models --capability reasoning --modality image --max-cost-input 1
      aiipython models info anthropic/claude-sonnet-4-5
      aiipython models default anthropic/claude-sonnet-4-5
    """
    if ctx.invoked_subcommand is not None:
        return
    from ._client import get_client

    data = get_client().list_models()
    every = [m for m in data.get("models", []) if isinstance(m, dict)]
    if provider is not None:
        _check_provider(provider, every, data)
    wanted = [q.lower() for q in queries]
    default = _default_name(data)
    kept = _registry_filter(capability, modality, min_context, max_cost_input)
    rows = [{**m, "default": f"{m.get('provider')}/{m.get('id')}" == default} for m in every
            if (not available or m.get("available")) and (provider is None or m.get("provider") == provider)
            and all(q in f"{m.get('provider')}/{m.get('id')} {m.get('name', '')}".lower() for q in wanted)
            and (kept is None or f"{m.get('provider')}/{m.get('id')}" in kept)]
    if as_json:
        click.echo(json.dumps({"models": rows, "default_model": data.get("default_model"),
                               "default_model_warning": data.get("default_model_warning"),
                               "models_json_error": data.get("models_json_error"),
                               "providers_error": data.get("providers_error") or {}}, indent=2))
        _default_warning(data)
        return
    if sys.stdout.isatty():
        _models_table(rows, available)
    else:
        for m in rows:
            click.echo(f"{m['provider']}/{m['id']}")
    _default_warning(data)
    if data.get("models_json_error"):
        click.echo(f"warning: pi's models.json has a problem: {data['models_json_error']}", err=True)
    for reason in (data.get("providers_error") or {}).values():
        click.echo(f"warning: {reason}", err=True)


def _registry_filter(capability: str | None, modality: str | None, min_context: int | None,
                     max_cost_input: float | None) -> set[str] | None:
    """The provider/ids that pass the typed API's filters (``aiipython.get_models``, models.dev's
    capabilities included), or None when none is given."""
    if capability is None and modality is None and min_context is None and max_cost_input is None:
        return None
    from ._ai.registry import get_models

    try:
        found = get_models(capability=capability, modality=modality, min_context=min_context,
                           max_cost_input=max_cost_input)
    except ValueError as exc:  # an unknown capability: the message lists the valid ones
        raise click.BadParameter(str(exc), param_hint="--capability") from exc
    return {m.full_id for m in found}


def _check_provider(provider: str, every: list[dict[str, Any]], data: dict[str, Any]) -> None:
    """A ``--provider`` pi has no model for is a usage error naming close provider ids."""
    import difflib

    known = sorted({str(m.get("provider")) for m in every} | set(data.get("providers_error") or {}))
    if provider in known:
        return
    close = difflib.get_close_matches(provider, known, n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise click.UsageError(f"pi has no provider {provider!r}; {hint}`aiipython auth status` lists the providers")


def _models_table(rows: list[dict[str, Any]], available: bool) -> None:
    """A rich table sized to the terminal: the detail columns only when they fit (>= 140 columns);
    narrower, a model name longer than its column folds onto a second line rather than hiding a column."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    wide = console.width >= 140
    table = Table(title=f"{len(rows)} models" + (" with credentials" if available else ""))
    table.add_column("model", no_wrap=wide, overflow="fold")  # the name to copy: never cut short
    columns = ("name", "context", "max out", "reasoning", "input", "$ in/out per 1M", "available", "default") \
        if wide else ("context", "$ in/out per 1M", "available", "default")
    for col in columns:
        table.add_column(col, justify="right" if col in ("context", "max out") else "left", no_wrap=not wide,
                         min_width=None if wide else len(col))
    for m in rows:
        cost = m.get("cost")
        price = (f"{cost.get('input', 0):g} / {cost.get('output', 0):g}" if isinstance(cost, dict)
                 else "unknown")  # no price listed: unknown, never "0 / 0" (free)
        cells = {"name": str(m.get("name", "")), "context": f"{m.get('context_window', 0):,}",
                 "max out": f"{m.get('max_tokens', 0):,}", "reasoning": "yes" if m.get("reasoning") else "",
                 "input": ",".join(m.get("input", [])),
                 "$ in/out per 1M": price,
                 "available": "yes" if m.get("available") else "", "default": "default" if m["default"] else ""}
        table.add_row(f"{m['provider']}/{m['id']}", *(cells[c] for c in columns))
    console.print(table)


models.add_command(models_info)
models.add_command(models_sync)


@models.command("default")
@click.argument("model", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def models_default(model: str | None, as_json: bool) -> None:
    """Show the model pi starts with, or make MODEL (provider/id) pi's default.

    The default is pi's own: settings.json's defaultProvider/defaultModel (written here by pi's
    own code, so `pi` starts with it too), else pi's default model of the first provider with
    credentials. A settings.json default pi does not know is a warning, not a silent switch.
    """
    from ._client import get_client

    data = get_client().set_default_model(model) if model else get_client().default_model()
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        name = _default_name(data)
        if name is None:
            click.echo("no default model: pi has no credentials for any provider (log in with `aiipython auth login`, "
                       "or set a provider's API key such as OPENAI_API_KEY)")
        else:
            source = (data.get("default_model") or {}).get("source")
            why = "settings.json" if source == "settings" else "pi's default for the first provider with credentials"
            click.echo(f"{name} ({why})")
    _default_warning(data)


@cli.group()
def auth() -> None:
    """Log in and out through pi; what pi has credentials for."""


auth.add_command(auth_login)
auth.add_command(auth_logout)


@auth.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def auth_status(as_json: bool) -> None:
    """Which providers are configured and how (oauth, api key, env, models.json). Shows no secret.

    Exits 1 when one of pi's files (auth.json, models.json) does not parse, naming the file and
    the position of the fault (its content is never shown).
    """
    from ._client import get_client

    data = get_client().auth_status()
    providers = data.get("providers", [])
    file_errors = [e for e in data.get("file_errors") or [] if isinstance(e, dict)]
    if as_json:
        click.echo(json.dumps(data, indent=2))
        if file_errors:
            raise SystemExit(1)
        return
    for p in sorted(providers, key=lambda p: (not p.get("configured"), p.get("provider", ""))):
        if p.get("configured"):
            click.echo(f"  {p['provider']:<24} configured ({p.get('source') or 'unknown source'})")
        else:
            env = f" or set {' or '.join(p['env_vars'])}" if p.get("env_vars") else ""
            hint = f" — log in with `aiipython auth login {p['provider']}`{env}" if p.get("env_vars") else ""
            click.echo(f"  {p['provider']:<24} not configured{hint}")
    for provider_id, reason in sorted((data.get("providers_error") or {}).items()):
        click.echo(f"  {provider_id:<24} not registered — {reason}")
    if not any(p.get("configured") for p in providers):
        click.echo("No provider has credentials: log in with `aiipython auth login` (a list of providers), "
                   "or set a provider's API key env var.")
    for e in file_errors:
        click.echo(f"error: {e.get('message')}. Credentials from the environment still work; fix the "
                   "file (or move it away) to use what it holds.", err=True)
    if file_errors:
        raise SystemExit(1)


cli.add_command(gateway)
cli.add_command(serve)
cli.add_command(litellm_config)
cli.add_command(smoke)
cli.add_command(cost)


@cli.command()
@click.pass_context
def demo(ctx: click.Context) -> None:
    """Run a small DSPy program through the Pi gateway on the default model, then a summary."""
    from ._demo import run_demo

    run_demo(model=ctx.obj["model"], backend=ctx.obj["backend"])


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="aiipython")
