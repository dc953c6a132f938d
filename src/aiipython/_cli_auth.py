"""``aiipython auth login`` and ``aiipython auth logout``: pi's own logins (aiipython._login) on
the command line. ``auth status`` lives in _cli.py. An API key is read from stdin or a hidden
prompt, never from the command line (the process list would show it)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from ._login import LoginProvider

__all__ = ["auth_login", "auth_logout"]


def _describe(p: LoginProvider) -> str:
    ways = []
    for m in p.methods:
        if m.type == "oauth":
            ways.append((m.login_label or m.name) + (" (subscription)" if m.subscription else ""))
        else:
            ways.append("API key")
    state = f"  [configured: {p.source}]" if p.configured else ""
    return f"{p.name} ({p.provider}): {', '.join(ways)}{state}"


def _pick(providers: list[LoginProvider], api_key: bool) -> str:
    """A numbered list like pi's /login; returns the chosen provider id."""
    choices = [p for p in providers if not api_key or p.method("api_key")]
    # pi's /login order: subscriptions (OAuth) first, then API keys; by name within each.
    choices.sort(key=lambda p: (p.method("oauth") is None, p.name.lower()))
    from ._login import read_line

    click.echo("Log in to which provider?")
    for n, p in enumerate(choices, 1):
        click.echo(f"  {n:>2}. {_describe(p)}")
    while True:  # stdin read like the login's own prompts (one buffer: piped answers stay in order)
        click.echo(f"Number (1-{len(choices)}): ", nl=False, err=True)
        answer = read_line().strip()
        if answer.isdigit() and 1 <= int(answer) <= len(choices):
            return choices[int(answer) - 1].provider
        click.echo(f"{answer!r} is not one of 1-{len(choices)}", err=True)


def _read_key(provider: str) -> str:
    """The API key from stdin (piped) or a hidden prompt (a terminal)."""
    if sys.stdin is not None and not sys.stdin.isatty():
        from ._login import read_all

        key = read_all().strip()
        if not key:
            raise click.UsageError("--api-key reads the key from stdin, and stdin was empty")
        return key
    key = click.prompt(f"API key for {provider}", hide_input=True, err=True).strip()
    if not key:
        raise click.UsageError("no API key given")
    return key


@click.command("login")
@click.argument("provider", required=False)
@click.option("--api-key", "api_key", is_flag=True,
              help="Store an API key instead of an OAuth login: read from stdin when it is piped, "
                   "else asked without echo. Never give the key as an argument.")
@click.option("--no-browser", is_flag=True, help="Print the sign-in URL; do not open a browser.")
def auth_login(provider: str | None, api_key: bool, no_browser: bool) -> None:
    """Log in to PROVIDER through pi (a numbered list when PROVIDER is omitted).

    OAuth subscriptions (Claude Pro/Max, ChatGPT, GitHub Copilot, ...) open the sign-in page and
    wait for it; API keys are stored with --api-key. The credential goes to pi's auth.json,
    where pi and every pi-based tool find it.

    \b
    Examples:
      aiipython auth login anthropic
      printf %s "$KEY" | aiipython auth login openai --api-key
    """
    from ._login import auth_providers, login

    providers = None
    if provider is None:
        if api_key and sys.stdin is not None and not sys.stdin.isatty():
            raise click.UsageError("name the PROVIDER when the key comes on stdin")
        providers = auth_providers()
        provider = _pick(providers, api_key)
    if not api_key:
        entry = next((p for p in providers or auth_providers() if p.provider == provider), None)
        api_key = entry is not None and entry.method("oauth") is None  # an API key is its only login
    key = _read_key(provider) if api_key else None
    result = login(provider, api_key=key, open_browser=not no_browser)
    click.echo(f"Logged in to {result.provider} ({result.method}); pi stored the credential in its auth.json.")
    if result.source not in (None, result.method):
        click.echo(f"note: pi uses {result.provider}'s credential from {result.source} first.", err=True)
    if result.warning:
        click.echo(f"warning: {result.warning}", err=True)


@click.command("logout")
@click.argument("provider")
def auth_logout(provider: str) -> None:
    """Remove pi's stored credential for PROVIDER (env vars and models.json are not touched)."""
    from ._login import logout

    result = logout(provider)
    if result.removed:
        click.echo(f"Logged out of {result.provider}: pi's stored credential was removed.")
    else:
        click.echo(f"{result.provider} had no credential stored by pi; nothing removed.")
    if result.configured:
        click.echo(f"note: {result.provider} is still configured ({result.source}).", err=True)
