"""The CLI's one error path: aiipython's exceptions -> click's (exit codes 2 and 1, one message).

Every command runs under :class:`ErrorMappingGroup`, so a bad setting (``AIIPYTHON_START_TIMEOUT=soon``)
prints one ``Error:`` line and exits 2 whichever command read it, and no command needs a ``try``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from ._errors import AiipythonError, ConfigurationError, ProviderNotFoundError

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


class ErrorMappingGroup(click.Group):
    """A click group that runs its commands (nested groups included) inside :func:`_errors`, so
    no command needs its own ``try``; its sub-groups are of this class too."""

    group_class = type  # cli.group() makes an ErrorMappingGroup

    def invoke(self, ctx: click.Context) -> Any:
        with _errors():
            return super().invoke(ctx)
