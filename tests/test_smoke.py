"""``aiipython smoke`` through the real CLI and gateway: one line per configured provider, the
failing one marked, exit 1; ``--json`` parses. Providers: a scripted one that answers, one that
fails with 500, the embedded local model, and whatever else the gateway lists with credentials
(the echo provider when present)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fake_upstream import FakeUpstream, Reply

from aiipython._local_model import find_local_model
from aiipython._settings import Settings

pytestmark = pytest.mark.gateway

SECRET = "sk-smoke-test-secret-key-424242"


def _agent_dir(tmp_path: Path, base_url: str) -> Path:
    def block(model: str) -> dict[str, object]:
        return {"baseUrl": base_url, "api": "openai-completions", "apiKey": SECRET,
                "models": [{"id": model, "cost": {"input": 1.0, "output": 2.0, "cacheRead": 0, "cacheWrite": 0},
                            "compat": {"supportsStore": False, "supportsDeveloperRole": False,
                                       "maxTokensField": "max_tokens"}}]}

    agent = tmp_path / "agent"
    agent.mkdir()
    (agent / "models.json").write_text(json.dumps({"providers": {"broken": block("b-1"), "fake": block("f-1")}}))
    return agent


def _run(*args: str, agent: Path, local: bool) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PI_CODING_AGENT_DIR": str(agent), "AIIPYTHON_LOCAL_MODEL": "on" if local else "off"}
    return subprocess.run([sys.executable, "-m", "aiipython", *args], capture_output=True, text=True, env=env,
                          timeout=240, stdin=subprocess.DEVNULL)


def _available_providers(agent: Path, local: bool) -> set[str]:
    out = _run("models", "--available", "--json", agent=agent, local=local)
    assert out.returncode == 0, out.stderr
    return {m["provider"] for m in json.loads(out.stdout)["models"]}


@pytest.mark.skipif(find_local_model(Settings()) is None, reason="the embedded local model is not installed")
def test_smoke_one_line_per_provider_failure_marked_exit_1(fake_upstream: FakeUpstream, tmp_path: Path) -> None:
    agent = _agent_dir(tmp_path, fake_upstream.base_url)
    providers = _available_providers(agent, local=True)
    assert {"broken", "fake", "local"} <= providers
    # Calls go in provider order; only broken and fake reach the scripted upstream, in that order.
    fake_upstream.enqueue(Reply(status=500), Reply(text="OK", prompt_tokens=7, completion_tokens=1))
    out = _run("smoke", agent=agent, local=True)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    lines = out.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == sorted(providers)
    by_provider = {line.split()[0]: line for line in lines}
    assert by_provider["broken"].split()[2] == "FAIL" and "UpstreamError" in by_provider["broken"]
    assert by_provider["fake"].split()[1:3] == ["fake/f-1", "ok"] and "7+1 tok" in by_provider["fake"]
    assert by_provider["local"].split()[2] == "ok"
    assert SECRET not in out.stdout + out.stderr


def test_smoke_json_parses_and_all_ok_exits_0(fake_upstream: FakeUpstream, tmp_path: Path) -> None:
    agent = _agent_dir(tmp_path, fake_upstream.base_url)
    fake_upstream.enqueue(Reply(text="OK", prompt_tokens=5, completion_tokens=1))
    out = _run("smoke", "--provider", "fake", "--json", agent=agent, local=False)
    assert out.returncode == 0, out.stderr
    (result,) = json.loads(out.stdout)
    assert result["provider"] == "fake" and result["model"] == "fake/f-1" and result["ok"] is True
    assert (result["input_tokens"], result["output_tokens"]) == (5, 1)
    assert result["cost_usd"] == pytest.approx((5 * 1.0 + 1 * 2.0) / 1e6)
    assert fake_upstream.requests[-1]["max_tokens"] == 16


def test_smoke_unknown_provider_is_one_clear_line(fake_upstream: FakeUpstream, tmp_path: Path) -> None:
    agent = _agent_dir(tmp_path, fake_upstream.base_url)
    out = _run("smoke", "--provider", "nope", agent=agent, local=False)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert "provider 'nope' has no credentials" in out.stderr and "broken, echo, fake" in out.stderr
