"""``aiipython gateway install|status|start|stop`` and ``aiipython serve``.

``start`` and ``serve`` run a gateway in the foreground (it lives as long as the command) and record its
url, pid, client token and admin token in ``<cache>/gateway/running.json`` (a fresh 0600 file
that replaces whatever was there, a planted symlink included), so other processes can use it
with ``AIIPYTHON_GATEWAY_URL``/``AIIPYTHON_GATEWAY_TOKEN`` and ``stop`` can end it. One such
gateway at a time: a second ``start``/``serve`` while one runs says where it is and exits 1
(checked and recorded under a file lock, ``running.json.lock``), so none is ever lost. What the
gateway logs (``AIIPYTHON_GATEWAY_LOG_LEVEL``: ``info`` a line per request, default ``warn``)
goes to this command's stderr and to ``<cache>/gateway/gateway.log`` (0600, appended; ``aiipython
gateway logs`` prints its end). ``serve`` is
the one for other tools: a fixed port (4141), the client token from ``AIIPYTHON_GATEWAY_TOKEN``
or fresh, and the ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY`` lines to paste.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ._cli_errors import ErrorMappingGroup
from ._errors import AiipythonError
from ._model_names import LOCAL_MODEL, LOCAL_PROVIDER
from ._settings import load_settings

if TYPE_CHECKING:
    from ._gateway import Gateway

__all__ = ["gateway", "serve"]



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
    """Node, installation and any gateway started with `aiipython gateway start` or `aiipython serve`."""
    from ._node import cache_root, find_node, install_dir, install_problem

    settings = load_settings()
    report: dict[str, Any] = {"cache_dir": str(cache_root(settings))}
    try:
        runtime = find_node(settings)
        report["node"] = {"path": str(runtime.node), "version": runtime.version_text, "source": runtime.source}
        if runtime.override_problem is not None:
            report["node"]["override_problem"] = f"AIIPYTHON_NODE is not usable: {runtime.override_problem}"
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
    if "override_problem" in node:
        click.echo(f"warning:   {node['override_problem']}")
    damaged = f"damaged: {report['install_problem']}; " if "install_problem" in report else ""
    click.echo(f"installed: {'yes' if report['installed'] else f'no ({damaged}run `aiipython gateway install`)'}"
               f"  [{report.get('install_dir', report.get('install_error'))}]")
    running_text = f"{report['running']['url']} pid {report['running']['pid']}" if report["running"] else "no"
    click.echo(f"running:   {running_text}")


def _running() -> dict[str, Any] | None:
    """running.json's record when its gateway still runs, else None."""
    state = _read_state()
    if state is not None and isinstance(state.get("pid"), int) and _is_our_gateway(state["pid"]):
        return state
    return None


#: How many times a served gateway starts the embedded model's server again after it died.
_LOCAL_RESTARTS = 5


def _keep_local_model(gw: Gateway, stop: threading.Event) -> None:
    """While ``gw`` serves other processes, start the embedded model's server again when it dies
    and point the gateway at the new one (its clients cannot: they hold only the client token).
    Each restart is one line on stderr; after :data:`_LOCAL_RESTARTS` it gives up, saying so."""
    for _ in range(_LOCAL_RESTARTS):
        server = gw.local_model
        if server is None:
            return
        server.wait()
        if stop.is_set():
            return
        click.echo(f"warning: the embedded local model's server (pid {server.pid}) exited; starting it again",
                   err=True)
        try:
            gw.ensure_model(LOCAL_MODEL)
        except AiipythonError as exc:
            click.echo(f"warning: the embedded local model could not start again ({exc}); {LOCAL_MODEL} calls "
                       "fail until this command is restarted", err=True)
            return
        new = gw.local_model
        click.echo(f"The embedded local model is served again (pid {new.pid if new else None}).", err=True)
    click.echo(f"warning: the embedded local model's server died {_LOCAL_RESTARTS + 1} times; not starting it "
               f"again ({LOCAL_MODEL} calls fail until this command is restarted)", err=True)


def _run_until_stopped(start: Callable[[Callable[[str], None]], Gateway],
                       announce: Callable[[Gateway, Path], None]) -> None:
    """Unless a recorded gateway still runs (then exit 1 saying where), ``start`` one (it gets
    the stderr sink) and record it in ``running.json`` (0600; `gateway status` and `gateway stop`
    read it), both under the file lock; call ``announce``, then wait for Ctrl-C, SIGTERM
    (`gateway stop`) or the gateway's own exit; stop it and remove its record (only its own).
    Meanwhile the embedded local model is kept running (:func:`_keep_local_model`)."""
    from filelock import FileLock

    from ._gateway import GatewayLog

    path = _state_file()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock = FileLock(str(path.with_name(path.name + ".lock")))
    sink = GatewayLog(load_settings(), echo=lambda line: click.echo(line, err=True))
    with lock:
        running = _running()
        if running is not None:
            raise click.ClickException(
                f"a Pi gateway started with `aiipython gateway start` or `aiipython serve` is already running "
                f"at {running.get('url')} (pid {running['pid']}): use it (AIIPYTHON_GATEWAY_URL="
                f"{running.get('url')}), or stop it first with `aiipython gateway stop`")
        gw = start(sink)
        try:
            write_private_json(path, {"url": gw.url, "pid": gw.pid, "token": gw.token,
                                      "admin_token": gw.admin_token})
        except BaseException:
            gw.close()
            raise
    stop = threading.Event()
    try:
        announce(gw, path)
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        threading.Thread(target=_keep_local_model, args=(gw, stop), daemon=True).start()

        def wait_for_exit() -> None:
            gw.wait()
            stop.set()

        threading.Thread(target=wait_for_exit, daemon=True).start()
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
    finally:
        stop.set()
        gw.close()
        with lock:
            state = _read_state()
            if state is not None and state.get("pid") == gw.pid:
                path.unlink(missing_ok=True)
    click.echo("Pi gateway stopped.")


@gateway.command()
def start() -> None:
    """Run a gateway in the foreground until Ctrl-C or `aiipython gateway stop`."""
    from ._gateway import start_gateway

    def announce(gw: Gateway, path: Path) -> None:
        click.echo(f"Pi gateway running at {gw.url} (pid {gw.pid}). Use it from other processes with:")
        click.echo(f"  export AIIPYTHON_GATEWAY_URL={gw.url}")
        read_token = f"import json;print(json.load(open('{path}'))['token'])"
        click.echo(f'  export AIIPYTHON_GATEWAY_TOKEN=$(python -c "{read_token}")')
        click.echo("Stop it with Ctrl-C or `aiipython gateway stop`.")

    settings = load_settings()
    _run_until_stopped(lambda sink: start_gateway(settings, local_model="eager", on_stderr=sink),  # for others
                       announce)


#: `aiipython serve`'s default port (documented in README "Other tools").
SERVE_PORT = 4141


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but loopback needs --allow-remote.")
@click.option("--port", type=click.IntRange(0, 65535), default=SERVE_PORT, show_default=True,
              help="TCP port; 0 picks a free one.")
@click.option("--allow-remote", is_flag=True,
              help="Allow a non-loopback --host: other machines can then reach the gateway (plain HTTP).")
def serve(host: str, port: int, allow_remote: bool) -> None:
    """Serve pi's models to other tools over the OpenAI API (/v1) until Ctrl-C.

    Prints the OPENAI_BASE_URL and OPENAI_API_KEY lines to paste into another tool. The key is
    the gateway's client token (model calls only; it cannot change providers or log in):
    AIIPYTHON_GATEWAY_TOKEN when set, else a fresh random one. The embedded local model starts
    now when it is installed. `aiipython gateway status` / `gateway stop` see this gateway.
    """
    from ._gateway import is_loopback_host, start_gateway

    remote = not is_loopback_host(host)
    if remote and not allow_remote:
        raise click.UsageError(
            f"--host {host} is not a loopback address: other machines could reach the gateway and use "
            "your pi credentials. Pass --allow-remote to do it anyway, or use --host 127.0.0.1."
        )
    if remote:
        click.echo(f"warning: serving on {host}: anyone who can reach port {port} and has the key can use your "
                   "pi credentials, and the traffic (key included) is plain HTTP. Put it behind TLS or a "
                   "firewall you trust.", err=True)
    settings = load_settings()

    def announce(gw: Gateway, _path: Path) -> None:
        base = f"{gw.url}/v1"
        click.echo(f"Pi gateway serving the OpenAI API at {base} (pid {gw.pid}). Paste into the other tool:")
        click.echo(f"OPENAI_BASE_URL={base}")
        click.echo(f"OPENAI_API_KEY={gw.token}")
        if gw.local_model is not None:
            click.echo(f"The embedded local model is served as {LOCAL_PROVIDER}/{gw.local_model.alias}.")
        click.echo("Stop it with Ctrl-C or `aiipython gateway stop`.")
        sys.stdout.flush()

    _run_until_stopped(lambda sink: start_gateway(settings, local_model="eager", host=host, port=port,
                                                  token=settings.gateway_token, on_stderr=sink), announce)


@gateway.command()
@click.option("-n", "--lines", type=click.IntRange(1), default=50, show_default=True, help="How many lines.")
def logs(lines: int) -> None:
    """The end of the gateways' log (<cache>/gateway/gateway.log): `gateway start` / `serve`, and any
    gateway Python spawns while AIIPYTHON_GATEWAY_LOG_LEVEL is set.

    One JSON line per event, tokens redacted; a line per request with AIIPYTHON_GATEWAY_LOG_LEVEL=info,
    only problems by default (warn).
    """
    import collections

    from ._gateway import gateway_log_path

    path = gateway_log_path(load_settings())
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            tail = collections.deque(f, maxlen=lines)
    except FileNotFoundError:
        click.echo(f"No gateway log yet ({path}): it is written by `aiipython gateway start` and `aiipython serve`.",
                   err=True)
        return
    for line in tail:
        click.echo(line, nl=False)


@gateway.command()
def stop() -> None:
    """Stop the gateway started with `aiipython gateway start` or `aiipython serve`."""
    state = _read_state()
    if state is None or not isinstance(state.get("pid"), int) or not _is_our_gateway(state["pid"]):
        _state_file().unlink(missing_ok=True)
        click.echo("No gateway started with `aiipython gateway start` or `aiipython serve` is running.")
        return
    import psutil

    proc = psutil.Process(state["pid"])
    proc.terminate()
    _, alive = psutil.wait_procs([proc], timeout=5)
    for p in alive:
        p.kill()
    click.echo(f"Stopped the Pi gateway (pid {state['pid']}).")
