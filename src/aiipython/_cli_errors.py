"""The CLI's one error path: aiipython's, DSPy's and LiteLLM's exceptions -> click's (one
``Error:`` message naming the fix, no traceback; exit codes as in README "Command line").

Exit 2: a usage or configuration error (a bad option or ``AIIPYTHON_*`` value, DSPy's
``LMConfigurationError``). Exit 1: the request failed: an unknown model, missing credentials, a
provider error, or the machinery (Node, the gateway, the local model) could not run it.

Every command runs under :class:`ErrorMappingGroup`, so a bad setting (``AIIPYTHON_START_TIMEOUT=soon``)
prints one ``Error:`` line and exits 2 whichever command read it, and no command needs a ``try``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from ._errors import AiipythonError, ConfigurationError, ProviderNotFoundError, lm_error_fix

__all__ = ["ErrorMappingGroup"]


class _UsageProblem(click.ClickException):
    """A :class:`ConfigurationError` on the command line: ``Error: <message>``, exit 2."""

    exit_code = 2


@contextmanager
def _errors() -> Iterator[None]:
    """The one mapping of our errors to click's (:class:`ErrorMappingGroup` applies it to every
    command): a :class:`ConfigurationError`, or a :class:`ProviderNotFoundError` (a provider named
    on the command line that pi does not have), is a usage error (exit 2, one ``Error:`` line, no
    traceback), any other :class:`AiipythonError` a failure (exit 1). Anything else propagates."""
    try:
        yield
    except (ConfigurationError, ProviderNotFoundError) as exc:
        raise _UsageProblem(str(exc)) from exc
    except AiipythonError as exc:
        raise click.ClickException(str(exc)) from exc
    except Exception as exc:
        mapped = _dspy_or_litellm(exc)
        if mapped is None:
            raise
        raise mapped from exc


def _dspy_or_litellm(exc: Exception) -> click.ClickException | None:
    """One ``Error:`` line for an exception raised by DSPy or LiteLLM (None for anything else)."""
    mro = type(exc).__mro__
    origin = next((c.__module__.split(".")[0] for c in mro if c.__module__.split(".")[0] in ("dspy", "litellm")),
                  None)
    if origin is None:
        return None
    text = (getattr(exc, "message", None) or str(exc) or type(exc).__name__).strip()
    first = text.splitlines()[0].strip() if text else type(exc).__name__
    fix, usage = lm_error_fix(exc) or ("see the message; the call failed", False)
    source = "DSPy" if origin == "dspy" else "LiteLLM"
    mapped = _UsageProblem(f"{source}: {first} (to fix: {fix})") if usage else click.ClickException(
        f"{source}: {first} (to fix: {fix})")
    return mapped


class ErrorMappingGroup(click.Group):
    """A click group that runs its commands (nested groups included) inside :func:`_errors`, so
    no command needs its own ``try``; its sub-groups are of this class too."""

    group_class = type  # cli.group() makes an ErrorMappingGroup

    def invoke(self, ctx: click.Context) -> Any:
        with _errors():
            return super().invoke(ctx)
