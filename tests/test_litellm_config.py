"""``aiipython litellm-config`` / ``generate_router_config``: a LiteLLM model_list from pi's registry
that reaches each model through the gateway's OpenAI-compatible endpoint, prices per token."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import FAKE

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
