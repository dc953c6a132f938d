"""End to end on a real model: the embedded SmolLM2-135M (llama.cpp) behind the real Node gateway,
driven through PiGatewayLM, DSPy and the CLI. Assertions are about shape (text, usage, stop
reason), not wisdom: the model is tiny. pi's agent dir is empty, so the local model is the
default. DSPy's JSONAdapter with two demonstrations: the 135M model follows it reliably, while it
often garbles ChatAdapter's ``[[ ## answer ## ]]`` markers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dspy
import pytest

import aiipython
from aiipython._gateway import close_gateway, get_gateway

pytestmark = pytest.mark.e2e
LOCAL = "local/smollm2-135m"
DEMOS = [("What is the capital of Italy?", "Rome"), ("How many days are in a week?", "Seven")]


@pytest.fixture(scope="module")
def empty_agent_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("empty-pi-agent")


@pytest.fixture(autouse=True)
def _local_model_on(_clean_env: None, monkeypatch: pytest.MonkeyPatch, empty_agent_dir: Path) -> None:
    monkeypatch.setenv("AIIPYTHON_LOCAL_MODEL", "on")
    monkeypatch.setenv("PI_CODING_AGENT_DIR", str(empty_agent_dir))


@pytest.fixture(scope="module", autouse=True)
def _own_gateway() -> Iterator[None]:
    close_gateway()  # start one with this module's settings
    yield
    close_gateway()


def _qa() -> dspy.Predict:
    predict = dspy.Predict("question -> answer")
    predict.demos = [dspy.Example(question=q, answer=a).with_inputs("question") for q, a in DEMOS]
    return predict


def _check_usage(usage: dict) -> None:  # type: ignore[type-arg]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_the_local_model_starts_on_first_use_not_with_the_gateway() -> None:
    from aiipython._local_model import close_local_model

    close_gateway()
    close_local_model()
    gateway = get_gateway()
    assert gateway.local_model is None, "the gateway must not start the local model by itself"
    listed = aiipython.get_client().list_models()["models"]
    assert any(m["provider"] == "local" and m["available"] for m in listed), "local is offered before it runs"
    result = aiipython.get_client().complete(LOCAL, [{"role": "user", "content": "Hi"}], options={"max_tokens": 8})
    assert result["message"]["usage"]["output"] > 0
    assert gateway.local_model is not None and gateway.local_model.alive()
    assert get_gateway() is gateway


def test_gateway_serves_the_local_model_raw() -> None:
    models = aiipython.get_client().list_models()
    local = [m for m in models["models"] if m["provider"] == "local"]
    assert [m["id"] for m in local] == ["smollm2-135m"] and local[0]["available"] is True
    result = aiipython.get_client().complete(LOCAL, [{"role": "user", "content": "Say hello."}],
                                             options={"temperature": 0, "max_tokens": 24})
    message = result["message"]
    text = "".join(b["text"] for b in message["content"] if b["type"] == "text")
    assert text.strip()
    u = message["usage"]
    assert u["input"] + u["cacheRead"] > 0 and 0 < u["output"] <= 24
    assert u["totalTokens"] == u["input"] + u["output"] + u["cacheRead"] + u["cacheWrite"]
    assert message["stopReason"] in ("stop", "length")
    assert result["model"] == {"provider": "local", "id": "smollm2-135m"}


def test_make_lm_defaults_to_the_local_model_through_pi() -> None:
    lm = aiipython.make_lm()
    assert isinstance(lm, aiipython.PiGatewayLM) and lm.model == f"pi/{LOCAL}"


def test_predict_with_usage() -> None:
    lm = aiipython.make_lm(LOCAL, backend="pi", temperature=0.0, max_tokens=64, cache=False)
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter(), track_usage=True):
        prediction = _qa()(question="What is the capital of France?")
    assert isinstance(prediction.answer, str) and prediction.answer.strip()
    usage = prediction.get_lm_usage()[f"pi/{LOCAL}"]
    _check_usage(usage)
    entry = lm.history[-1]
    assert entry["usage"]["prompt_tokens"] == usage["prompt_tokens"], "usage must be recorded once"


def test_streamify_chunks_arrive_before_the_prediction() -> None:
    lm = aiipython.make_lm(LOCAL, backend="pi", temperature=0.0, max_tokens=64, cache=False)
    program = dspy.streamify(_qa(), stream_listeners=[dspy.streaming.StreamListener(signature_field_name="answer")],
                             async_streaming=False)
    order: list[str] = []
    chunks: list[str] = []
    final = None
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        for item in program(question="What color is the sky on a clear day?"):
            if isinstance(item, dspy.streaming.StreamResponse):
                order.append("chunk")
                chunks.append(item.chunk)
            elif isinstance(item, dspy.Prediction):
                order.append("prediction")
                final = item
    assert final is not None and final.answer.strip()
    assert "chunk" in order and order.index("chunk") < order.index("prediction")
    assert final.answer.strip() in "".join(chunks)  # JSONAdapter streams the JSON value, quotes included


async def test_async_acall() -> None:
    lm = aiipython.make_lm(LOCAL, backend="pi", temperature=0.0, max_tokens=64, cache=False)
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter(), track_usage=True):
        prediction = await _qa().acall(question="How many legs does a cat have?")
    assert prediction.answer.strip()
    _check_usage(prediction.get_lm_usage()[f"pi/{LOCAL}"])


def test_cli_ask_on_the_local_model() -> None:
    env = dict(os.environ)
    out = subprocess.run([sys.executable, "-m", "aiipython", "--lm-backend", "pi", "ask", "Say hello.",
                          "--json", "--max-tokens", "24"], capture_output=True, text=True, env=env, timeout=180)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["backend"] == "pi" and data["model"] == LOCAL
    assert data["text"].strip() and data["stop_reason"] in ("stop", "length")
    _check_usage(data["usage"])
    streamed = subprocess.run([sys.executable, "-m", "aiipython", "ask", "Say hello.", "--max-tokens", "24"],
                              capture_output=True, text=True, env=env, timeout=180)
    assert streamed.returncode == 0 and streamed.stdout.strip()


def test_the_gateway_restarts_the_local_model_when_it_died() -> None:
    gateway = get_gateway()
    aiipython.get_client().complete(LOCAL, [{"role": "user", "content": "Hi"}], options={"max_tokens": 4})
    assert gateway.local_model is not None
    old = gateway.local_model.pid
    assert old is not None
    os.kill(old, 9)
    from procutil import gone_within

    assert gone_within(old, 5)
    result = aiipython.get_client().complete(LOCAL, [{"role": "user", "content": "Hi"}], options={"max_tokens": 8})
    assert result["message"]["usage"]["output"] > 0
    assert get_gateway() is gateway, "a dead local model is restarted, not the gateway"
    assert gateway.local_model is not None and gateway.local_model.pid != old


def test_the_demo_runs_through_pi_on_the_local_model() -> None:
    out = subprocess.run([sys.executable, "-m", "aiipython", "demo"], capture_output=True, text=True,
                         env=dict(os.environ, COLUMNS="120"), timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "backend: pi" in out.stdout and f"pi/{LOCAL}" in out.stdout
    assert "Streaming" in out.stdout and "summary" in out.stdout
    summary = out.stdout[out.stdout.index("summary"):]
    assert "$0.000000" in summary  # the local model is free


def test_typed_api_on_the_local_model() -> None:
    """The typed API (issue 12) on a real model: event order, ``partial`` growth, ``result()``,
    ``complete()`` and an async twin, through pi's openai-completions to llama.cpp."""
    import asyncio

    from aiipython import StreamOptions, ctx, user

    options = StreamOptions(max_tokens=8, temperature=0.0)
    events, grown = [], []
    for event in aiipython.stream(LOCAL, ctx(user("Say hello."), system="Be brief."), options):
        events.append(event)
        if event.type == "text_delta":
            grown.append(event.partial.text)  # one message growing in place: read it now
    kinds = [e.type for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done" and "text_delta" in kinds
    assert kinds.index("text_start") < kinds.index("text_delta") < kinds.index("text_end")
    assert all(b.startswith(a) for a, b in zip(grown, grown[1:], strict=False)) and grown[-1]
    final = events[-1].message
    assert final.text == grown[-1] and final.usage.output > 0 and final.usage.cost.total == 0
    assert final.stop_reason.value in ("stop", "length")
    assert aiipython.stream(LOCAL, "Say hi.", options).result().text
    assert aiipython.complete(LOCAL, "Say hi.", options).usage.input > 0
    assert asyncio.run(aiipython.acomplete(LOCAL, "Say hi.", options)).text
