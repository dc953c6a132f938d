"""Install faults: ``npm ci`` dies with its parent, a damaged install is detected and redone, and a
cache path that is not a directory is a ``GatewayInstallError`` naming it and the fix. A fake npm
(a Python script) stands in for the registry where only the install logic is under test."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from procutil import gone_within, subreaper

import aiipython
from aiipython import _node
from aiipython._node import NodeRuntime, find_node, install_gateway, install_problem, is_installed
from aiipython._settings import load_settings

#: A stand-in for `npm ci`: lays out node_modules for package.json's dependencies (a package.json
#: and an index.js each, plus the files the gateway loads by path) and counts its runs.
_FAKE_NPM = textwrap.dedent("""
    import json, os, pathlib, sys
    root = pathlib.Path.cwd()
    deps = json.loads((root / "package.json").read_text())["dependencies"]
    for name in [*deps, *sys.argv[1].split(",")]:
        d = root / "node_modules" / (name if name in deps else os.path.dirname(name))
        d.mkdir(parents=True, exist_ok=True)
        if name in deps:
            (d / "package.json").write_text(json.dumps({"name": name, "main": "index.js"}))
            (d / "index.js").write_text("export {};\\n")
        else:
            (root / "node_modules" / name).write_text("export {};\\n")
    with open(sys.argv[2], "a") as f:
        f.write("run\\n")
""")


def _fake_runtime(tmp_path: Path) -> NodeRuntime:
    script = tmp_path / "fake_npm.py"
    script.write_text(_FAKE_NPM)
    real = find_node(load_settings())
    runs = tmp_path / "npm-runs.txt"
    return NodeRuntime(node=real.node, version=real.version, source="test",
                       npm=(sys.executable, str(script), ",".join(_node._DEEP_ENTRIES), str(runs)))


def test_a_deleted_file_inside_node_modules_triggers_a_reinstall(tmp_path: Path) -> None:
    settings = load_settings({"AIIPYTHON_CACHE_DIR": str(tmp_path / "cache")})
    runtime = _fake_runtime(tmp_path)
    first = install_gateway(settings, runtime, progress=False)
    assert is_installed(settings) and (tmp_path / "npm-runs.txt").read_text().count("run") == 1
    install_gateway(settings, runtime, progress=False)  # intact: nothing to do
    assert (tmp_path / "npm-runs.txt").read_text().count("run") == 1
    (first.root / "node_modules" / "fastify" / "index.js").unlink()
    assert not is_installed(settings)
    assert install_problem(first.root) == "node_modules/fastify/index.js is missing"
    status = subprocess.run([sys.executable, "-m", "aiipython", "gateway", "status", "--json"], capture_output=True,
                            text=True, env=dict(os.environ, AIIPYTHON_CACHE_DIR=str(tmp_path / "cache")),
                            timeout=120, check=False)
    report = json.loads(status.stdout)
    assert report["installed"] is False and "fastify/index.js is missing" in report["install_problem"]
    again = install_gateway(settings, runtime, progress=False)
    assert (tmp_path / "npm-runs.txt").read_text().count("run") == 2
    assert is_installed(settings) and (again.root / "node_modules" / "fastify" / "index.js").is_file()


def test_a_cache_path_that_is_a_file_is_an_install_error_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    settings = load_settings({"AIIPYTHON_CACHE_DIR": str(blocker)})
    with pytest.raises(aiipython.GatewayInstallError) as info:
        install_gateway(settings, _fake_runtime(tmp_path), progress=False)
    assert str(blocker) in info.value.message and "AIIPYTHON_CACHE_DIR" in info.value.message


def test_a_killed_parent_leaves_no_npm_running(tmp_path: Path) -> None:
    fifo = tmp_path / "npm-started"
    os.mkfifo(fifo)
    hang = tmp_path / "hang_npm.py"
    hang.write_text(f"import os, time\nfd = os.open({str(fifo)!r}, os.O_WRONLY)\n"
                    "os.write(fd, str(os.getpid()).encode()); os.close(fd)\ntime.sleep(600)\n")
    parent_code = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from aiipython._node import NodeRuntime, _run_npm_ci, find_node
        from aiipython._settings import load_settings
        real = find_node(load_settings())
        runtime = NodeRuntime(node=real.node, version=real.version, source="test",
                              npm=(sys.executable, {str(hang)!r}))
        _run_npm_ci(runtime, Path({str(tmp_path)!r}))
    """)
    with subreaper():
        parent = subprocess.Popen([sys.executable, "-c", parent_code], stdin=subprocess.DEVNULL)
        try:
            with open(fifo) as f:  # opens once the fake npm runs
                npm_pid = int(f.read())
            os.kill(parent.pid, signal.SIGKILL)
            parent.wait()
            assert gone_within(npm_pid, 10), "npm outlived its killed parent"
        finally:
            if parent.poll() is None:
                parent.kill()
                parent.wait()


def test_start_up_bundles_that_cannot_be_built_do_not_fail_the_install(tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    """The fake npm installs no esbuild: prebundle.mjs fails, the install is still complete and
    usable, the marker says why, and one warning names the cost (a slower start)."""
    settings = load_settings({"AIIPYTHON_CACHE_DIR": str(tmp_path / "cache")})
    with caplog.at_level("WARNING", logger="aiipython"):
        done = install_gateway(settings, _fake_runtime(tmp_path), progress=False)
    assert is_installed(settings)
    record = json.loads((done.root / ".aiipython-install-complete").read_text())
    why = record["prebundled"]["error"]
    assert "esbuild" in why and "has no build()" in why
    assert " at " not in why, "the reason, not a stack trace (whose tail would cut the reason off)"
    assert any("start-up bundles were not built" in r.getMessage() for r in caplog.records)
    assert not (done.root / "prebundled").exists()


def test_the_real_install_loads_its_start_up_bundles(tmp_path: Path) -> None:
    """The warm install the suite runs on: prebundle.mjs bundled every listed package, and a gateway
    started from that install loads them (its debug line) instead of the original files."""
    settings = load_settings()
    done = install_gateway(settings, find_node(settings), progress=False)
    record = json.loads((done.root / ".aiipython-install-complete").read_text())
    assert set(record["prebundled"]["packages"]) == {"typebox", "undici", "@earendil-works/pi-schema"}
    assert record["prebundled"]["skipped"] == {}
    env = dict(os.environ, AIIPYTHON_GATEWAY_TOKEN="t-prebundle-check", AIIPYTHON_GATEWAY_LOG_LEVEL="debug",
               PI_OFFLINE="1", PI_CODING_AGENT_DIR=str(tmp_path / "agent"))
    with subprocess.Popen([str(find_node(settings).node), str(done.server)], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as proc:
        assert proc.stdout is not None and proc.stdin is not None and proc.stderr is not None
        ready = json.loads(proc.stdout.readline())  # the debug line comes before the readiness line
        proc.stdin.close()  # stdin EOF: the gateway exits
        err = proc.stderr.read()
        proc.wait(timeout=60)
    assert ready["event"] == "ready"
    used = [json.loads(line) for line in err.splitlines() if '"prebundled"' in line]
    assert used and sorted(used[0]["used"]) == sorted(record["prebundled"]["packages"]), err[-2000:]
