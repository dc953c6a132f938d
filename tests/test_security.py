"""Token scopes and files with secrets, on the real gateway (docs/architecture.md "Security"):
the client token given to other tools cannot register providers; ``gateway start`` writes
``running.json`` as a fresh 0600 file, never through a planted symlink."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import GATEWAY_CACHE

import aiipython
from aiipython._cli_gateway import write_private_json
from aiipython._errors import error_from_envelope

pytestmark = pytest.mark.gateway


def _put_providers(gateway: Any, token: str, providers: dict[str, Any]) -> httpx.Response:
    return httpx.put(f"{gateway.url}/providers", json={"providers": providers}, timeout=30,
                     headers={"authorization": f"Bearer {token}"})


def test_client_token_is_refused_on_admin_routes(gateway) -> None:  # type: ignore[no-untyped-def]
    block = {"api": "openai-completions", "baseUrl": "http://127.0.0.1:9/v1", "apiKey": "sk-x-0123456789",
             "models": [{"id": "m"}]}
    refused = _put_providers(gateway, gateway.token, {"scoped": block})
    assert refused.status_code == 403
    err = error_from_envelope(refused.status_code, refused.json())
    assert isinstance(err, aiipython.PermissionDeniedError) and "admin token" in err.message
    assert gateway.admin_token and gateway.admin_token != gateway.token
    bad = _put_providers(gateway, gateway.admin_token, {"scoped": {**block, "apiKey": "!id"}})
    assert bad.status_code == 400 and "!command" in bad.json()["error"]["message"]
    with aiipython.PiGatewayClient(url=gateway.url, token=gateway.token) as client:
        assert client.health()["ok"] is True  # the client token serves the client routes
        assert not any(m["provider"] == "scoped" for m in client.list_models()["models"])


def test_write_private_json_replaces_a_symlink_and_a_world_writable_file(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    victim.chmod(0o666)
    path = tmp_path / "state" / "running.json"
    path.parent.mkdir()
    path.symlink_to(victim)
    write_private_json(path, {"token": "t"})
    assert victim.read_text() == "keep me"
    assert not path.is_symlink() and json.loads(path.read_text()) == {"token": "t"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.unlink()
    path.write_text("old")
    path.chmod(0o666)
    write_private_json(path, {"token": "u"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and json.loads(path.read_text()) == {"token": "u"}
    assert [p.name for p in path.parent.iterdir()] == ["running.json"]  # no temp file left


def test_gateway_start_replaces_a_planted_running_json_symlink(tmp_path: Path) -> None:
    state = GATEWAY_CACHE / "gateway" / "running.json"
    state.parent.mkdir(parents=True, exist_ok=True)
    state.unlink(missing_ok=True)
    victim = tmp_path / "planted.json"
    victim.write_text("{}")
    victim.chmod(0o666)
    state.symlink_to(victim)
    proc = subprocess.Popen([sys.executable, "-m", "aiipython", "gateway", "start"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=dict(os.environ))
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "Pi gateway running at" in first, proc.stderr.read() if proc.stderr else ""
        assert victim.read_text() == "{}", "the token was written through the planted symlink"
        assert not state.is_symlink() and stat.S_IMODE(state.stat().st_mode) == 0o600
        data = json.loads(state.read_text())
        assert data["token"] != data["admin_token"] and len(data["admin_token"]) >= 32
        rest = ""
        for _ in range(3):
            rest += proc.stdout.readline()
        assert data["admin_token"] not in first + rest  # only the client token is for other tools
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_corrupt_auth_json_keeps_env_keys_and_auth_status_names_it(tmp_path: Path) -> None:
    stored = "sk-stored-in-broken-auth-json-0123456789"
    agent = tmp_path / "agent"
    agent.mkdir()
    (agent / "auth.json").write_text('{"anthropic": {"type": "api_key", "key": "' + stored)
    env = dict(os.environ, PI_CODING_AGENT_DIR=str(agent), OPENAI_API_KEY="sk-env-key-still-works-0123")
    for args in (("auth", "status"), ("auth", "status", "--json")):
        out = subprocess.run([sys.executable, "-m", "aiipython", *args], capture_output=True, text=True,
                             env=env, timeout=300, stdin=subprocess.DEVNULL, check=False)
        assert out.returncode == 1, out.stderr
        assert stored[:10] not in out.stdout + out.stderr and "sk-env-key" not in out.stdout + out.stderr
        if "--json" in args:
            data = json.loads(out.stdout)
            assert {p["provider"]: p["source"] for p in data["providers"]}["openai"] == "env"
            assert data["file_errors"][0]["file"] == str(agent / "auth.json")
        else:
            assert "openai" in out.stdout and "configured (env)" in out.stdout
            assert f"{agent / 'auth.json'} is not valid JSON: Unterminated string at line 1 column" in out.stderr
