"""The CLI's one error path (unit: nothing is started): a bad setting is one line and exit 2 on
every command, the ``gateway`` group included."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from aiipython._cli import cli

BAD = {"AIIPYTHON_START_TIMEOUT": "soon"}
MESSAGE = "Error: AIIPYTHON_START_TIMEOUT='soon' is not a number of seconds; unset it or give e.g. 30"


def _command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in group.commands.items():
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from _command_paths(command, (*prefix, name))


PATHS = sorted(_command_paths(cli))


def test_the_tree_holds_the_gateway_group() -> None:
    assert {("gateway", "status"), ("gateway", "start"), ("auth", "status"), ("ask",)} <= set(PATHS)


@pytest.mark.parametrize("path", PATHS, ids=" ".join)
def test_a_bad_setting_is_one_line_and_exit_2(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, list(path), env=BAD)
    assert result.exit_code == 2, result.output
    assert result.output.strip() == MESSAGE  # stderr (click 8.2+ keeps it apart; output has both)
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_gateway_status_in_a_real_process_has_no_traceback() -> None:
    out = subprocess.run([sys.executable, "-m", "aiipython", "gateway", "status"], capture_output=True, text=True,
                         env={**os.environ, **BAD}, timeout=60, stdin=subprocess.DEVNULL)
    assert (out.returncode, out.stdout, out.stderr.strip()) == (2, "", MESSAGE)


def test_an_aiipython_error_is_exit_1() -> None:
    from aiipython._cli_errors import ErrorMappingGroup
    from aiipython._errors import ModelNotFoundError

    @click.group(cls=ErrorMappingGroup)
    def root() -> None:
        pass

    @root.group()
    def sub() -> None:
        pass

    @sub.command()
    def fail() -> None:
        raise ModelNotFoundError("pi does not know the model 'x/y'; `aiipython models` lists the models pi knows")

    assert isinstance(sub, ErrorMappingGroup)
    result = CliRunner().invoke(root, ["sub", "fail"])
    assert result.exit_code == 1 and result.output.strip().startswith("Error: pi does not know the model 'x/y'")


def _raising(exc: Exception) -> click.Group:
    from aiipython._cli_errors import ErrorMappingGroup

    @click.group(cls=ErrorMappingGroup)
    def root() -> None:
        pass

    @root.command()
    def fail() -> None:
        raise exc

    return root


@pytest.mark.parametrize(("make", "code", "fix"), [
    (lambda: __import__("dspy").utils.exceptions.LMAuthError("bad key", model="m"), 1, "check the provider's API key"),
    (lambda: __import__("dspy").utils.exceptions.LMConfigurationError("temperature must be 1.0"), 2,
     "fix the LM's arguments"),
    (lambda: __import__("litellm").exceptions.RateLimitError("slow down", llm_provider="openai", model="m"), 1,
     "rate-limiting"),
    (lambda: __import__("dspy").utils.exceptions.AdapterParseError(
        adapter_name="ChatAdapter", signature=__import__("dspy").Signature("q -> a"), lm_response="x"), 1,
     "did not follow DSPy's output format"),
], ids=["dspy-auth", "dspy-config", "litellm-rate-limit", "dspy-parse"])
def test_dspy_and_litellm_errors_are_one_line_naming_the_fix(make, code: int, fix: str) -> None:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(_raising(make()), ["fail"])
    assert result.exit_code == code, result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith(("Error: DSPy: ", "Error: LiteLLM: ")) and fix in line.split(" (to fix: ")[1]
    assert "  " not in line


def test_other_exceptions_are_not_swallowed() -> None:
    result = CliRunner().invoke(_raising(KeyError("ours")), ["fail"])
    assert isinstance(result.exception, KeyError)


def test_the_models_table_says_unknown_for_a_model_without_a_price(capsys: pytest.CaptureFixture[str]) -> None:
    """A listing with no ``cost`` is an unknown price, not a free model: never "0 / 0"."""
    from aiipython._cli import _models_table

    row = {"provider": "p", "id": "m", "context_window": 1000, "max_tokens": 10, "input": ["text"],
           "available": True, "default": False}
    _models_table([dict(row, id="priced", cost={"input": 3, "output": 15}), dict(row, id="unpriced")], False)
    lines = {line.split("│")[1].strip(): line for line in capsys.readouterr().out.splitlines() if "p/" in line}
    assert "3 / 15" in lines["p/priced"] and "unknown" in lines["p/unpriced"]
    assert "0 / 0" not in lines["p/unpriced"]
