"""Zero-shot DSPy on the embedded model (issue 15): with nothing but ``dspy.configure(lm=make_lm())``
``dspy.Predict`` and ``dspy.ChainOfThought`` return every output field with its type, on
signatures of several field types. The answers themselves are not checked (a 135M model); the
format is, and llama.cpp's schema-constrained output is what makes it hold
(docs/local_model.md "DSPy on the embedded model"; the rate over 100 calls: scripts/bench_offline.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import dspy
import pytest

import aiipython
from aiipython._gateway import close_gateway

pytestmark = pytest.mark.e2e


class Sentiment(dspy.Signature):
    """Classify the sentiment of the review."""

    review: str = dspy.InputField()
    sentiment: Literal["positive", "negative", "neutral"] = dspy.OutputField()


SIGNATURES: list[tuple[Any, dict[str, str]]] = [
    ("question -> answer", {"question": "What is the capital of France?"}),
    ("question -> answer: int", {"question": "What is 2 + 3?"}),
    ("statement -> is_true: bool", {"statement": "Water is wet."}),
    ("topic -> keywords: list[str]", {"topic": "gardening"}),
    (Sentiment, {"review": "I loved it!"}),
]


@pytest.fixture(scope="module", autouse=True)
def _own_gateway() -> Iterator[None]:
    from aiipython._local_model import close_local_model

    close_gateway()
    yield
    close_gateway()
    close_local_model()  # the process-wide server this module started is not the next module's


@pytest.fixture(autouse=True)
def _offline_home(_clean_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    home: Path = tmp_path_factory.getbasetemp() / "offline-agent"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("AIIPYTHON_LOCAL_MODEL", "on")
    monkeypatch.setenv("PI_CODING_AGENT_DIR", str(home))  # no credentials: the embedded model is the default


def typed(value: Any, annotation: Any) -> bool:
    if get_origin(annotation) is Literal:
        return value in get_args(annotation)
    if get_origin(annotation) is list:
        return isinstance(value, list) and all(isinstance(v, get_args(annotation)[0]) for v in value)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, annotation)


@pytest.mark.parametrize("module", [dspy.Predict, dspy.ChainOfThought], ids=["Predict", "ChainOfThought"])
@pytest.mark.parametrize(("signature", "inputs"), SIGNATURES, ids=[str(s[0]) if isinstance(s[0], str) else "Literal"
                                                                   for s in SIGNATURES])
def test_zero_shot_parses_with_only_make_lm(module: Any, signature: Any, inputs: dict[str, str]) -> None:
    lm = aiipython.make_lm(cache=False)
    assert lm.model == "pi/local/smollm2-135m"
    with dspy.context(lm=lm, adapter=None):
        program = module(signature)
        prediction = program(**inputs)
    fields = (program.predict if module is dspy.ChainOfThought else program).signature.output_fields
    for name, field in fields.items():
        assert typed(getattr(prediction, name), field.annotation), (name, getattr(prediction, name))
    # the reply DSPy parsed last was constrained to the signature's schema, with bounds
    last = lm.history[-1]
    if last["kwargs"].get("response_format") is not None:
        assert last["response"].finish_reason == "stop"
