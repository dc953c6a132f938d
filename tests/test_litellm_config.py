"""``aiipython litellm-config`` / ``generate_router_config``: a LiteLLM model_list from pi's registry
that reaches each model through the gateway's OpenAI-compatible endpoint, prices per token."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import FAKE, GATEWAY_CACHE, Reply

from aiipython._errors import ModelNotFoundError
from aiipython._litellm_config import generate_router_config

pytestmark = pytest.mark.gateway


def test_entries_reach_pi_models_through_the_gateway_with_pis_metadata(client) -> None:  # type: ignore[no-untyped-def]
    config = generate_router_config(client=client, api_base="http://127.0.0.1:9999/v1/")
    (entry,) = [e for e in config["model_list"] if e["model_name"] == FAKE]
    assert entry["litellm_params"] == {"model": f"openai/{FAKE}", "api_base": "http://127.0.0.1:9999/v1",
                                       "api_key": "os.environ/AIIPYTHON_GATEWAY_TOKEN"}
    info = entry["model_info"]
    # models.json: contextWindow 32000, maxTokens 4096, $1 / $2 / $0.5 per 1M input / output / cache read
    assert (info["max_input_tokens"], info["max_output_tokens"], info["mode"]) == (32000, 4096, "chat")
    assert info["input_cost_per_token"] == pytest.approx(1e-6)
    assert info["output_cost_per_token"] == pytest.approx(2e-6)
    assert info["cache_read_input_token_cost"] == pytest.approx(5e-7)
    assert info["supports_vision"] is True
    assert all(e["model_name"].split("/")[0] != "anthropic" for e in config["model_list"]), "only available"


def test_filters_and_a_clear_error_when_nothing_matches(client) -> None:  # type: ignore[no-untyped-def]
    every = generate_router_config(client=client, available=False, provider="anthropic")
    assert every["model_list"] and all(e["model_name"].startswith("anthropic/") for e in every["model_list"])
    with pytest.raises(ModelNotFoundError, match="provider 'anthropic' has no models with credentials"):
        generate_router_config(client=client, provider="anthropic")


def test_cli_writes_yaml_that_names_no_secret(tmp_path: Path) -> None:
    out_file = tmp_path / "router.yaml"
    env = {**os.environ, "AIIPYTHON_LOCAL_MODEL": "off"}
    out = subprocess.run([sys.executable, "-m", "aiipython", "litellm-config", "--provider", "fake", "-o",
                          str(out_file)], capture_output=True, text=True, env=env, timeout=180,
                         stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    text = out_file.read_text()
    data = yaml.safe_load(text)
    assert [e["model_name"] for e in data["model_list"]] == [FAKE]
    assert "sk-test-secret-key-123" not in text  # the fake provider's key in models.json
    assert "wrote" in out.stderr and "(1 models)" in out.stderr


def _cli_config(gateway: Any, out_file: Path, *args: str) -> dict[str, Any]:
    """`aiipython litellm-config` against ``gateway`` (an external one), its YAML parsed."""
    env = {**os.environ, "AIIPYTHON_GATEWAY_URL": gateway.url, "AIIPYTHON_GATEWAY_TOKEN": gateway.token}
    out = subprocess.run([sys.executable, "-m", "aiipython", "litellm-config", "--api-base", f"{gateway.url}/v1",
                          "-o", str(out_file), *args], capture_output=True, text=True, env=env, timeout=180,
                         stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    assert gateway.token not in out_file.read_text()  # the key is read from the environment, never written
    data: dict[str, Any] = yaml.safe_load(out_file.read_text())
    return data


@pytest.fixture
def litellm_clients() -> Iterator[None]:
    """Close the sync HTTP clients litellm caches per model (its own exit hook closes only the async
    ones), so their keep-alive sockets are not left to the garbage collector at exit."""
    yield
    import litellm

    cache = litellm.in_memory_llm_clients_cache
    for handler in list(getattr(cache, "cache_dict", {}).values()):
        close = getattr(handler, "close", None)
        if callable(close) and not asyncio.iscoroutinefunction(close):
            close()
    cache.flush_cache()


def test_the_generated_yaml_loads_in_a_litellm_router_that_calls_the_gateway(
        gateway: Any, fake_upstream: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        litellm_clients: None) -> None:
    import litellm

    data = _cli_config(gateway, tmp_path / "router.yaml")
    assert {"echo/echo", FAKE} <= {e["model_name"] for e in data["model_list"]}  # echo: always available
    monkeypatch.setenv("AIIPYTHON_GATEWAY_TOKEN", gateway.token)  # what os.environ/AIIPYTHON_GATEWAY_TOKEN reads
    router = litellm.Router(model_list=data["model_list"], num_retries=0)
    fake_upstream.enqueue(Reply("routed", prompt_tokens=6, completion_tokens=1))
    done = router.completion(model=FAKE, messages=[{"role": "user", "content": "hi"}])
    assert done.choices[0].message.content == "routed"
    assert (done.usage.prompt_tokens, done.usage.completion_tokens) == (6, 1)
    echo = router.completion(model="echo/echo", messages=[{"role": "user", "content": "through the router"}])
    assert echo.choices[0].message.content == "through the router"


@pytest.fixture(scope="module")
def local_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A gateway with the embedded local model started, as `aiipython serve` starts it."""
    from aiipython._gateway import start_gateway
    from aiipython._settings import load_settings

    env = {"AIIPYTHON_CACHE_DIR": str(GATEWAY_CACHE), "AIIPYTHON_LOCAL_MODEL": "on",
           "PI_CODING_AGENT_DIR": str(tmp_path_factory.mktemp("empty-agent")), "PATH": os.environ.get("PATH", "")}
    gw = start_gateway(load_settings(env), local_model="eager")
    yield gw
    gw.close()
    from aiipython._local_model import close_local_model

    close_local_model()  # the process-wide server eager start made


@pytest.mark.e2e
def test_a_router_completion_on_the_local_model(local_gateway: Any, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch, litellm_clients: None) -> None:
    import litellm

    data = _cli_config(local_gateway, tmp_path / "router.yaml", "--provider", "local")
    (entry,) = data["model_list"]
    assert entry["model_name"] == "local/smollm2-135m"
    assert entry["model_info"]["max_input_tokens"] == 8192  # the server's n_ctx: pi does not clamp to 1 token
    monkeypatch.setenv("AIIPYTHON_GATEWAY_TOKEN", local_gateway.token)
    router = litellm.Router(model_list=data["model_list"], num_retries=0)
    done = router.completion(model="local/smollm2-135m", messages=[{"role": "user", "content": "Say hi."}],
                             max_tokens=12, temperature=0)
    assert done.choices[0].message.content
    assert done.usage.prompt_tokens > 0 and 1 < done.usage.completion_tokens <= 12
