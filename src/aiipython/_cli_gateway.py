"""``aiipython gateway install|status|start|stop``.

``start`` runs a gateway in the foreground (it lives as long as this command) and records its
url, pid, client token and admin token in ``<cache>/gateway/running.json`` (a fresh 0600 file
that replaces whatever was there, a planted symlink included), so other processes can use it
with ``AIIPYTHON_GATEWAY_URL``/``AIIPYTHON_GATEWAY_TOKEN`` and ``stop`` can end it.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import threading
from pathlib import Path
from typing import Any

import click

from ._cli_errors import ErrorMappingGroup
from ._errors import AiipythonError
from ._settings import load_settings

__all__ = ["gateway"]


def _state_file() -> Path:
    from ._node import cache_root

    return cache_root(load_settings()) / "gateway" / "running.json"


def _read_state() -> dict[str, Any] | None:
    try:
        state = json.loads(_state_file().read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def write_private_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` as a new file readable by this user only (0600): a temp file in
    the same directory, then ``os.replace``. A symlink or another user's file already at ``path``
    is replaced, never written through."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # O_EXCL, 0600
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _is_our_gateway(pid: int) -> bool:
    import psutil

    try:
        proc = psutil.Process(pid)
        return Path(proc.exe()).name.startswith("node") and any(a.endswith("server.mjs") for a in proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


@click.group(cls=ErrorMappingGroup)
def gateway() -> None:
    """Install, inspect, run and stop the Pi gateway (the Node sidecar)."""


@gateway.command()
def install() -> None:
    """Install the gateway's npm packages now (npm ci into the per-user cache)."""
    from ._node import find_node, install_gateway

    settings = load_settings()
    runtime = find_node(settings)
    result = install_gateway(settings, runtime, progress=None)
    click.echo(f"Pi gateway installed in {result.root}")
    click.echo(f"Node {runtime.version_text} ({runtime.source}): {runtime.node}")


@gateway.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(as_json: bool) -> None:
    """Node, installation and any gateway started with `aiipython gateway start`."""
    from ._node import cache_root, find_node, install_dir, install_problem

    settings = load_settings()
    report: dict[str, Any] = {"cache_dir": str(cache_root(settings))}
    try:
        runtime = find_node(settings)
        report["node"] = {"path": str(runtime.node), "version": runtime.version_text, "source": runtime.source}
    except AiipythonError as exc:
        report["node"] = {"error": str(exc)}
    try:
        report["install_dir"] = str(install_dir(settings))
        problem = install_problem(install_dir(settings))
        report["installed"] = problem is None
        if problem is not None and problem != "not installed":
            report["install_problem"] = problem  # damaged: `gateway install` or the next start redoes it
    except AiipythonError as exc:
        report["installed"] = False
        report["install_error"] = str(exc)
    state = _read_state()
    running = state is not None and isinstance(state.get("pid"), int) and _is_our_gateway(state["pid"])
    report["running"] = {"url": state["url"], "pid": state["pid"]} if running and state else None
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    node = report["node"]
    click.echo(f"node:      {node.get('version')} ({node.get('source')}) {node.get('path')}" if "path" in node
               else f"node:      NOT FOUND\n{node['error']}")
    damaged = f"damaged: {report['install_problem']}; " if "install_problem" in report else ""
    click.echo(f"installed: {'yes' if report['installed'] else f'no ({damaged}run `aiipython gateway install`)'}"
               f"  [{report.get('install_dir', report.get('install_error'))}]")
    running_text = f"{report['running']['url']} pid {report['running']['pid']}" if report["running"] else "no"
    click.echo(f"running:   {running_text}")


@gateway.command()
def start() -> None:
    """Run a gateway in the foreground until Ctrl-C or `aiipython gateway stop`."""
    from ._gateway import start_gateway

    gw = start_gateway(load_settings(), local_model="eager")  # other processes may use it
    path = _state_file()
    write_private_json(path, {"url": gw.url, "pid": gw.pid, "token": gw.token, "admin_token": gw.admin_token})
    click.echo(f"Pi gateway running at {gw.url} (pid {gw.pid}). Use it from other processes with:")
    click.echo(f"  export AIIPYTHON_GATEWAY_URL={gw.url}")
    read_token = f"import json;print(json.load(open('{path}'))['token'])"
    click.echo(f'  export AIIPYTHON_GATEWAY_TOKEN=$(python -c "{read_token}")')
    click.echo("Stop it with Ctrl-C or `aiipython gateway stop`.")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def wait_for_exit() -> None:
        gw.wait()
        stop.set()

    threading.Thread(target=wait_for_exit, daemon=True).start()
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        gw.close()
        path.unlink(missing_ok=True)
    click.echo("Pi gateway stopped.")


@gateway.command()
def stop() -> None:
    """Stop the gateway started with `aiipython gateway start`."""
    state = _read_state()
    if state is None or not isinstance(state.get("pid"), int) or not _is_our_gateway(state["pid"]):
        _state_file().unlink(missing_ok=True)
        click.echo("No gateway started with `aiipython gateway start` is running.")
        return
    import psutil

    proc = psutil.Process(state["pid"])
    proc.terminate()
    _, alive = psutil.wait_procs([proc], timeout=5)
    for p in alive:
        p.kill()
    click.echo(f"Stopped the Pi gateway (pid {state['pid']}).")
