"""``aiipython serve``: the standalone OpenAI-compatible server for other tools, run as a real
subprocess (the CLI) against the real gateway, and used with the openai SDK from the lines it prints."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import openai
import pytest
from conftest import FAKE
from fake_upstream import Reply

pytestmark = pytest.mark.gateway


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aiipython", *args], capture_output=True, text=True,
                          env=env or dict(os.environ), timeout=180, stdin=subprocess.DEVNULL)


@contextmanager
def serving(*args: str, env: dict[str, str] | None = None,
            stderr: list[str] | None = None) -> Iterator[tuple[dict[str, str], list[str], Any]]:
    """Run ``aiipython serve ARGS``; yield the ``NAME=value`` lines it printed (up to "Stop it"),
    all its stdout lines so far, and the process. Stops it with ``gateway stop`` if still running;
    its whole stderr goes into ``stderr`` then."""
    proc = subprocess.Popen([sys.executable, "-m", "aiipython", "serve", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                            env=env or dict(os.environ))
    try:
        assert proc.stdout is not None and proc.stderr is not None
        lines: list[str] = []
        while not lines or not lines[-1].startswith("Stop it with"):
            line = proc.stdout.readline()
            assert line, f"serve ended early: {lines} {proc.stderr.read()}"
            lines.append(line.rstrip("\n"))
        pasted = dict(line.split("=", 1) for line in lines if line.startswith("OPENAI_"))
        yield pasted, lines, proc
    finally:
        if proc.poll() is None:
            run("gateway", "stop")
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        _, err = proc.communicate()
        if stderr is not None:
            stderr.append(err)


def test_serve_prints_the_lines_to_paste_and_serves_the_openai_api(fake_upstream: Any) -> None:
    with serving("--port", "0") as (pasted, lines, proc):
        base, key = pasted["OPENAI_BASE_URL"], pasted["OPENAI_API_KEY"]
        assert base.startswith("http://127.0.0.1:") and base.endswith("/v1")
        assert len(key) >= 32
        fake_upstream.enqueue(Reply("served"))
        with openai.OpenAI(base_url=base, api_key=key, max_retries=0) as client:
            assert {"echo/echo", FAKE} <= {m.id for m in client.models.list()}
            echo = client.chat.completions.create(model="echo/echo", messages=[{"role": "user", "content": "hi there"}])
            assert echo.choices[0].message.content == "hi there"
            done = client.chat.completions.create(model=FAKE, messages=[{"role": "user", "content": "x"}])
            assert done.choices[0].message.content == "served"
        # The key handed out is the client token: it cannot re-point providers.
        put = httpx.put(base.removesuffix("/v1") + "/providers", headers={"authorization": f"Bearer {key}"},
                        json={"providers": {}}, timeout=30)
        assert put.status_code == 403 and put.json()["error"]["type"] == "forbidden"
        status = json.loads(run("gateway", "status", "--json").stdout)
        assert status["running"] and f"{status['running']['url']}/v1" == base
        assert key not in json.dumps(status)
        out = run("gateway", "stop")
        assert out.returncode == 0 and "Stopped" in out.stdout
        assert proc.wait(timeout=30) == 0
    assert json.loads(run("gateway", "status", "--json").stdout)["running"] is None


def test_serve_uses_the_token_from_the_environment() -> None:
    token = "my-own-gateway-token-0123456789"
    with serving("--port", "0", env=dict(os.environ, AIIPYTHON_GATEWAY_TOKEN=token)) as (pasted, _, _proc):
        assert pasted["OPENAI_API_KEY"] == token
        with openai.OpenAI(base_url=pasted["OPENAI_BASE_URL"], api_key=token, max_retries=0) as client:
            assert "echo/echo" in {m.id for m in client.models.list()}
        with openai.OpenAI(base_url=pasted["OPENAI_BASE_URL"], api_key="wrong-" + token, max_retries=0) as client:
            with pytest.raises(openai.AuthenticationError):
                client.models.list()


def test_a_weak_environment_token_is_a_usage_error() -> None:
    out = run("serve", "--port", "0", env=dict(os.environ, AIIPYTHON_GATEWAY_TOKEN="short"))
    assert out.returncode == 2
    assert "AIIPYTHON_GATEWAY_TOKEN must be at least 16" in out.stderr and "short" not in out.stderr.split(":", 1)[1]


def test_a_non_loopback_host_is_refused_unless_asked_for() -> None:
    out = run("serve", "--host", "0.0.0.0", "--port", "0")
    assert out.returncode == 2 and "--allow-remote" in out.stderr and "not a loopback address" in out.stderr
    stderr: list[str] = []
    with serving("--host", "0.0.0.0", "--port", "0", "--allow-remote", stderr=stderr) as (pasted, _, _proc):
        port = int(pasted["OPENAI_BASE_URL"].rsplit(":", 1)[1].split("/")[0])
        listening = httpx.get(f"http://127.0.0.1:{port}/health",
                              headers={"authorization": f"Bearer {pasted['OPENAI_API_KEY']}"}, timeout=30)
        assert listening.json()["ok"] is True
    assert "warning: serving on 0.0.0.0" in stderr[0]


def test_a_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        out = run("serve", "--port", str(port))
    assert out.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}: the port is in use" in out.stderr and "--port 0" in out.stderr


def test_serve_help_names_the_defaults() -> None:
    out = run("serve", "--help")
    assert out.returncode == 0
    assert "4141" in out.stdout and "127.0.0.1" in out.stdout and "--allow-remote" in out.stdout


@pytest.mark.e2e
def test_serve_starts_the_local_model_for_openai_clients(tmp_path: Any) -> None:
    """The served gateway starts the embedded model at once, so a /v1 client can call ``local/...``
    with no Python process behind it; pi does not clamp its answer to one token."""
    env = dict(os.environ, AIIPYTHON_LOCAL_MODEL="on", PI_CODING_AGENT_DIR=str(tmp_path))
    with serving("--port", "0", env=env) as (pasted, lines, _proc):
        assert "The embedded local model is served as local/smollm2-135m." in lines
        with openai.OpenAI(base_url=pasted["OPENAI_BASE_URL"], api_key=pasted["OPENAI_API_KEY"],
                           max_retries=0, timeout=120) as client:
            assert "local/smollm2-135m" in {m.id for m in client.models.list()}
            done = client.chat.completions.create(
                model="local/smollm2-135m", messages=[{"role": "user", "content": "Name three colours."}],
                max_tokens=24, temperature=0)
            assert done.usage is not None and done.usage.prompt_tokens > 0
            assert 1 < done.usage.completion_tokens <= 24
            assert done.choices[0].finish_reason in ("stop", "length") and done.choices[0].message.content
            chunks = list(client.chat.completions.create(
                model="local/smollm2-135m", messages=[{"role": "user", "content": "Say hello."}],
                max_tokens=16, temperature=0, stream=True, stream_options={"include_usage": True}))
            assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip()
            usage = chunks[-1].usage
            assert usage is not None and 1 < usage.completion_tokens <= 16
            resp = client.responses.create(model="local/smollm2-135m", input="Say hello.", max_output_tokens=16)
            assert resp.status in ("completed", "incomplete") and resp.output_text
            assert resp.usage is not None and resp.usage.output_tokens > 1


@pytest.mark.e2e
def test_serve_starts_the_local_model_again_when_it_dies(tmp_path: Any) -> None:
    import psutil

    env = dict(os.environ, AIIPYTHON_LOCAL_MODEL="on", PI_CODING_AGENT_DIR=str(tmp_path))
    with serving("--port", "0", env=env) as (pasted, _lines, proc):
        servers = [p for p in psutil.Process(proc.pid).children(recursive=True)
                   if any(a.endswith("_local_server.py") for a in p.cmdline())]
        assert len(servers) == 1
        servers[0].kill()
        seen = []
        while not seen or not seen[-1].startswith("The embedded local model is served again"):
            line = proc.stderr.readline()
            assert line, f"serve's stderr ended: {seen}"
            seen.append(line.strip())
        assert f"server (pid {servers[0].pid}) exited; starting it again" in seen[-2]
        with openai.OpenAI(base_url=pasted["OPENAI_BASE_URL"], api_key=pasted["OPENAI_API_KEY"],
                           max_retries=0, timeout=120) as client:
            done = client.chat.completions.create(model="local/smollm2-135m", max_tokens=8,
                                                  messages=[{"role": "user", "content": "Say hi."}])
            assert done.choices[0].message.content
