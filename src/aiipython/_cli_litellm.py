"""CLI commands that join aiipython to LiteLLM and check providers: ``litellm-config``, ``smoke``."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import click

from ._litellm_config import DEFAULT_API_BASE, DEFAULT_API_KEY_ENV, generate_router_config, router_config_yaml

__all__ = ["litellm_config", "smoke"]


@click.command("litellm-config")
@click.option("--all", "every", is_flag=True, help="Every model pi knows, not only those with credentials.")
@click.option("--provider", default=None, help="Only this provider's models.")
@click.option("--api-base", default=DEFAULT_API_BASE, show_default=True,
              help="The gateway's OpenAI-compatible base URL (`aiipython serve`).")
@click.option("--api-key-env", default=DEFAULT_API_KEY_ENV, show_default=True,
              help="The variable LiteLLM reads the gateway's client token from (never written to the file).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the YAML here (atomically) instead of stdout.")
def litellm_config(every: bool, provider: str | None, api_base: str, api_key_env: str, output: Path | None) -> None:
    """A LiteLLM router config (model_list) from pi's registry, through the gateway.

    \b
    Example:
      aiipython litellm-config --provider anthropic -o router.yaml
      litellm --config router.yaml      # with AIIPYTHON_GATEWAY_TOKEN set
    """
    text = router_config_yaml(generate_router_config(api_base=api_base, available=not every,
                                                     provider=provider, api_key_env=api_key_env))
    if output is None:
        click.echo(text, nl=False)
        return
    fd, tmp = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, output)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    click.echo(f"wrote {output} ({text.count('model_name:')} models)", err=True)


@click.command()
@click.option("--provider", default=None, help="Only this provider.")
@click.option("--model", "model_name", default=None, help="Only this model (provider/id).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of lines.")
def smoke(provider: str | None, model_name: str | None, as_json: bool) -> None:
    """One tiny call per configured provider: ok/FAIL, latency, tokens, cost. Exit 1 if any failed.

    \b
    Example:
      aiipython smoke
      aiipython smoke --provider anthropic --json
    """
    from ._smoke import smoke as run_smoke

    results = run_smoke(provider=provider, model=model_name)
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in results], indent=2))
    else:
        for r in results:
            click.echo(r.line())
        failed = sum(not r.ok for r in results)
        click.echo(f"{len(results) - failed} ok, {failed} failed", err=True)
    if any(not r.ok for r in results):
        raise SystemExit(1)
