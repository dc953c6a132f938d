"""A real LiteLLM proxy as pi provider ``litellm``, end to end: DSPy → gateway → LiteLLM proxy →
llama.cpp (the embedded model). The gateway discovers the proxy's models from LITELLM_PROXY_API_BASE
and LITELLM_PROXY_API_KEY; a stopped proxy shows its reason in ``/models``; a restarted one brings
the models back. The proxy's key never appears in any output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dspy
import pytest
from litellm_proxy import LiteLLMProxy

from aiipython._gateway import close_gateway
from aiipython._local_model import LOCAL_MODEL_ID, LocalModelServer, find_local_model
from aiipython._settings import Settings

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(find_local_model(Settings()) is None, reason="the embedded model is not installed")]

PROXY_KEY = "sk-litellm-master-test-7f3a9c2e51"


@pytest.fixture(scope="module")
def llama() -> Iterator[LocalModelServer]:
    path = find_local_model(Settings())
    assert path is not None
    with LocalModelServer(path).start() as server:
        yield server


@pytest.fixture(scope="module")
def proxy(llama: LocalModelServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiteLLMProxy]:
    model_list = [{
        "model_name": "smol",
        "litellm_params": {"model": f"openai/{LOCAL_MODEL_ID}", "api_base": llama.url, "api_key": llama.api_key},
        "model_info": {"max_input_tokens": 8192, "max_output_tokens": 256,
                       "input_cost_per_token": 1e-7, "output_cost_per_token": 2e-7},
    }]
    p = LiteLLMProxy(model_list, master_key=PROXY_KEY, workdir=tmp_path_factory.mktemp("litellm-proxy")).start()
    yield p
    p.stop()


@pytest.fixture
def proxy_env(proxy: LiteLLMProxy, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, str]]:
    monkeypatch.setenv("LITELLM_PROXY_API_BASE", proxy.url)
    monkeypatch.setenv("LITELLM_PROXY_API_KEY", PROXY_KEY)
    monkeypatch.setenv("PI_CODING_AGENT_DIR", str(tmp_path / "agent"))
    close_gateway()
    yield dict(os.environ)
    close_gateway()


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([sys.executable, "-m", "aiipython", *args], capture_output=True, text=True, env=env,
                         timeout=240, stdin=subprocess.DEVNULL)
    assert PROXY_KEY not in out.stdout + out.stderr
    return out


def test_models_lists_the_proxys_models_with_its_metadata(proxy_env: dict[str, str]) -> None:
    out = _cli("models", "--provider", "litellm", "--json", env=proxy_env)
    assert out.returncode == 0, out.stderr
    (smol,) = json.loads(out.stdout)["models"]
    assert (smol["provider"], smol["id"], smol["available"]) == ("litellm", "smol", True)
    assert (smol["context_window"], smol["max_tokens"]) == (8192, 256)
    assert smol["cost"]["input"] == pytest.approx(0.1) and smol["cost"]["output"] == pytest.approx(0.2)


def test_dspy_through_gateway_and_proxy_to_llama_cpp(proxy_env: dict[str, str]) -> None:
    from aiipython import make_lm

    lm = make_lm("litellm/smol", backend="pi", temperature=0.0, max_tokens=64, cache=False)
    predict = dspy.Predict("question -> answer")
    # Two demonstrations and JSONAdapter: what the 135M model follows reliably (tests/test_e2e_local.py).
    demos = [("What is the capital of Italy?", "Rome"), ("How many days are in a week?", "Seven")]
    predict.demos = [dspy.Example(question=q, answer=a).with_inputs("question") for q, a in demos]
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        result = predict(question="What is the capital of France?")
    assert isinstance(result.answer, str) and result.answer.strip()
    usage = lm.history[-1]["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_a_stopped_proxy_is_reported_and_a_restarted_one_comes_back(proxy: LiteLLMProxy,
                                                                    proxy_env: dict[str, str]) -> None:
    from aiipython._client import get_client

    client = get_client()
    assert any(m["provider"] == "litellm" for m in client.list_models()["models"])
    proxy.stop()
    try:
        down = client.list_models()
        assert not any(m["provider"] == "litellm" for m in down["models"])
        assert "cannot reach" in down["providers_error"]["litellm"]
        status = _cli("auth", "status", env=proxy_env)
        assert status.returncode == 0 and "litellm" in status.stdout and "cannot reach" in status.stdout
    finally:
        proxy.start()
    back = client.list_models()
    assert back["providers_error"] is None
    assert [m["id"] for m in back["models"] if m["provider"] == "litellm"] == ["smol"]
