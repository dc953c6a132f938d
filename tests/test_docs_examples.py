"""The typed API's documented examples run as written: every ```python block of
docs/python_api.md (and the README's non-DSPy quick start), in order, in one namespace, through
the process's gateway and pi, against the scripted upstream that pi knows as provider ``fake``.

The only edit is the model: the docs' ``anthropic/claude-sonnet-4-5`` becomes ``fake/fake-model``
(and ``None`` / ``quick()``'s default model is ``AIIPYTHON_MODEL=fake/fake-model``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from conftest import FAKE, Reply

pytestmark = pytest.mark.gateway

REPO = Path(__file__).resolve().parent.parent
DOC_MODEL = "anthropic/claude-sonnet-4-5"


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", path.read_text(), re.M | re.S)


def run_blocks(blocks: list[str], namespace: dict[str, Any]) -> None:
    for index, block in enumerate(blocks):
        code = compile(block.replace(DOC_MODEL, FAKE), f"<example {index + 1}>", "exec")
        exec(code, namespace)


def test_python_api_examples_run(process_gateway, fake_upstream, monkeypatch, capsys) -> None:
    monkeypatch.setenv("AIIPYTHON_MODEL", FAKE)
    blocks = python_blocks(REPO / "docs" / "python_api.md")
    assert len(blocks) == 3, "the page's examples changed: update the replies scripted below"
    fake_upstream.enqueue(
        Reply("Paris."),  # quick()
        Reply("Indents hold the code"),  # complete(): the haiku
        Reply("Once upon a time"),  # stream(): the story
        Reply("", tool_calls=[{"id": "call_1", "name": "get_weather", "arguments": {"location": "Tokyo"}}]),
        Reply("It is 22°C and sunny in Tokyo."),
    )
    namespace: dict[str, Any] = {"model": FAKE}  # the tool-calling example's model
    run_blocks(blocks, namespace)
    out = capsys.readouterr().out
    assert "Paris." in out and "Indents hold the code" in out and "Once upon a time" in out
    assert "It is 22°C and sunny in Tokyo." in out
    assert fake_upstream.calls == 5
    tool_turn = fake_upstream.requests[4]["messages"]
    assert tool_turn[-1] == {"role": "tool", "tool_call_id": "call_1", "content": "22°C, sunny"}
    # The models-and-costs example: its cost is pi's own for that reply.
    reply, m = namespace["reply"], namespace["m"]
    assert m.full_id == FAKE
    assert namespace["calculate_cost"](m, reply.usage).total == pytest.approx(reply.usage.cost.total)


def test_readme_quick_start_example_runs(process_gateway, fake_upstream, monkeypatch, capsys) -> None:
    monkeypatch.setenv("AIIPYTHON_MODEL", FAKE)
    blocks = [b for b in python_blocks(REPO / "README.md") if "from aiipython import complete" in b]
    assert len(blocks) == 1
    fake_upstream.enqueue(Reply("DSPy programs language models."), Reply("Old pond, a frog"))
    run_blocks(blocks, {})
    out = capsys.readouterr().out
    assert "DSPy programs language models." in out and "Old pond, a frog" in out
    assert fake_upstream.calls == 2
