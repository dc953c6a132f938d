"""The ``aiipython`` command line, run as a real subprocess against the real gateway, with pi
pointed at the scripted upstream (provider ``fake``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FAKE
from fake_upstream import Reply

pytestmark = pytest.mark.gateway


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aiipython", *args], capture_output=True, text=True,
                          env=env or dict(os.environ), timeout=timeout, stdin=subprocess.DEVNULL)


def test_ask_streams_the_answer_through_pi(fake_upstream) -> None:  # type: ignore[no-untyped-def]
    fake_upstream.enqueue(Reply(text="Paris is the capital", prompt_tokens=9, completion_tokens=4))
    out = run("--lm-backend", "pi", "--model", FAKE, "ask", "Capital of France?")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "Paris is the capital"
    sent = fake_upstream.requests[-1]["messages"]
    assert sent[-1]["content"] in ("Capital of France?", [{"type": "text", "text": "Capital of France?"}])


def test_ask_json_has_usage_and_cost(fake_upstream) -> None:  # type: ignore[no-untyped-def]
    fake_upstream.enqueue(Reply(text="four", prompt_tokens=1000, completion_tokens=500, cached_tokens=200))
    out = run("--lm-backend", "pi", "--model", FAKE, "ask", "2+2?", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["backend"] == "pi" and data["text"] == "four" and data["stop_reason"] == "stop"
    usage = data["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (1000, 500, 1500)
    assert usage["cache_read_tokens"] == 200
    # models.json prices: $1 per 1M input, $0.5 per 1M cache read, $2 per 1M output
    assert usage["cost_usd"] == pytest.approx((800 * 1.0 + 200 * 0.5 + 500 * 2.0) / 1e6)


def test_models_json_parses_and_filters() -> None:
    out = run("models", "--json", "--provider", "fake")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert [f"{m['provider']}/{m['id']}" for m in data["models"]] == [FAKE]
    assert data["models"][0]["available"] is True
    every = json.loads(run("models", "--json").stdout)["models"]
    assert len(every) > 100  # pi's built-in catalog
    available = json.loads(run("models", "--json", "--available").stdout)["models"]
    assert {f"{m['provider']}/{m['id']}" for m in available} == {FAKE, "echo/echo"}  # echo: always


def test_models_table() -> None:
    out = run("models", "--available")
    assert out.returncode == 0 and FAKE in out.stdout


def test_auth_status_shows_no_secret(agent_dir: Path) -> None:
    secret = json.loads((agent_dir / "models.json").read_text())["providers"]["fake"]["apiKey"]
    env = dict(os.environ, OPENAI_API_KEY="sk-env-secret-value-999")
    for args in (("auth", "status"), ("auth", "status", "--json")):
        out = run(*args, env=env)
        assert out.returncode == 0, out.stderr
        assert secret not in out.stdout + out.stderr
        assert "sk-env-secret-value-999" not in out.stdout + out.stderr
    data = json.loads(run("auth", "status", "--json", env=env).stdout)
    by_name = {p["provider"]: p for p in data["providers"]}
    assert by_name["openai"]["configured"] is True
    assert by_name["anthropic"]["configured"] is False


def test_unknown_model_is_exit_1_naming_the_fix() -> None:
    out = run("--lm-backend", "pi", "--model", "fake/no-such-model", "ask", "hi")
    assert out.returncode == 1
    assert "no-such-model" in out.stderr and "fake/fake-model" in out.stderr


def test_usage_errors_are_exit_2() -> None:
    assert run("--lm-backend", "nope", "ask", "hi").returncode == 2
    assert run("ask").returncode == 2
    bad_env = dict(os.environ, AIIPYTHON_LM_BACKEND="nope")
    out = run("ask", "hi", env=bad_env)
    assert out.returncode == 2 and "AIIPYTHON_LM_BACKEND" in out.stderr


def test_upstream_failure_is_exit_1_not_empty_success(fake_upstream) -> None:  # type: ignore[no-untyped-def]
    fake_upstream.enqueue(Reply(status=500))
    out = run("--lm-backend", "pi", "--model", FAKE, "ask", "hi")
    assert out.returncode == 1 and out.stdout == ""
    assert "upstream" in out.stderr.lower() or "500" in out.stderr


def test_gateway_install_and_status() -> None:
    out = run("gateway", "install")
    assert out.returncode == 0, out.stderr
    assert "installed" in out.stdout
    status = json.loads(run("gateway", "status", "--json").stdout)
    assert status["installed"] is True and status["node"]["version"] >= "v22.19"
    assert status["running"] is None


def test_gateway_start_status_stop() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "aiipython", "gateway", "start"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "Pi gateway running at http://127.0.0.1:" in first, proc.stderr.read() if proc.stderr else ""
        status = json.loads(run("gateway", "status", "--json").stdout)
        assert status["running"] and status["running"]["url"] in first
        assert "token" not in json.dumps(status)
        out = run("gateway", "stop")
        assert out.returncode == 0 and "Stopped" in out.stdout
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert json.loads(run("gateway", "status", "--json").stdout)["running"] is None


def test_help_and_version() -> None:
    out = run("-h")
    assert out.returncode == 0 and "ask" in out.stdout and "--lm-backend" in out.stdout
    assert run("--version").returncode == 0


def _fresh_home(tmp_path: Path, **env: str) -> dict[str, str]:
    agent = tmp_path / "agent"
    agent.mkdir()
    return dict(os.environ, PI_CODING_AGENT_DIR=str(agent), **env)


def test_models_marks_pis_default_and_ask_names_it_on_stderr(fake_upstream) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(run("models", "--json", "--available").stdout)
    marked = [f"{m['provider']}/{m['id']}" for m in data["models"] if m["default"]]
    assert marked == [FAKE]  # the only provider with credentials; never echo/echo
    assert data["default_model"] == {"provider": "fake", "id": "fake-model", "source": "pi"}
    piped = run("models", "--available")
    assert piped.returncode == 0 and FAKE in piped.stdout.splitlines()  # piped: names only, for xargs
    fake_upstream.enqueue(Reply(text="hello"))
    out = run("--lm-backend", "pi", "ask", "Hi")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "hello"
    assert "make_lm: using fake/fake-model" in out.stderr and "Traceback" not in out.stderr


def test_models_default_with_only_openai_key_is_pis_choice(tmp_path: Path) -> None:
    env = _fresh_home(tmp_path, OPENAI_API_KEY="sk-test-only-openai-0123456789")
    out = run("models", "default", "--json", env=env)
    assert out.returncode == 0, out.stderr
    default = json.loads(out.stdout)["default_model"]
    assert default["provider"] == "openai" and default["source"] == "pi" and default["id"] != "gpt-4"
    shown = run("models", "default", env=env)
    assert shown.stdout.strip() == f"openai/{default['id']} (pi's default for the first provider with credentials)"


def test_models_default_sets_pis_settings_json_and_warns_about_a_missing_one(tmp_path: Path) -> None:
    env = _fresh_home(tmp_path, OPENAI_API_KEY="sk-test-only-openai-0123456789")
    out = run("models", "default", "openai/gpt-4o", env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "openai/gpt-4o (settings.json)"
    saved = json.loads((tmp_path / "agent" / "settings.json").read_text())
    assert (saved["defaultProvider"], saved["defaultModel"]) == ("openai", "gpt-4o")
    assert run("models", "default", env=env).stdout.strip() == "openai/gpt-4o (settings.json)"
    unknown = run("models", "default", "openai/gpt-nope", env=env)
    assert unknown.returncode == 1 and "Traceback" not in unknown.stderr
    assert 'unknown model "openai/gpt-nope"' in unknown.stderr
    (tmp_path / "agent" / "settings.json").write_text(json.dumps({"defaultProvider": "openai",
                                                                   "defaultModel": "gpt-gone"}))
    shown = run("models", "default", env=env)
    assert shown.returncode == 0 and "Traceback" not in shown.stderr
    assert "warning: pi's default model openai/gpt-gone" in shown.stderr and "is not a model pi knows" in shown.stderr
    assert shown.stdout.startswith("openai/") and "gpt-gone" not in shown.stdout
