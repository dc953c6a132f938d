"""The Pi gateway process: one per Python process, started lazily, restarted when it died.

``get_gateway()`` returns the process's :class:`Gateway`, starting it on first use: find Node,
install the npm packages, offer the embedded local model when enabled (its server starts on the
first call to ``local/...`` and is then registered with the gateway), spawn
``node server.mjs --host 127.0.0.1 --port 0`` with two fresh tokens in its environment (the client
token for model calls, the admin token for ``PUT /providers`` and logins, held only by this
process; docs/architecture.md "Security") and read its readiness line (docs/protocol.md
"Launch"). It is thread-safe (many threads asking at once start exactly one), notices a dead
gateway and starts a new one, and stops it at interpreter exit. With ``AIIPYTHON_GATEWAY_URL``
and ``AIIPYTHON_GATEWAY_TOKEN`` set it connects to a running gateway instead and spawns nothing.
"""

from __future__ import annotations

import atexit
import logging
import os
import secrets
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from ._errors import (
    ConfigurationError,
    GatewayStartError,
    LocalModelError,
    scrub,
)
from ._model_names import LOCAL_PROVIDER, is_local
from ._settings import Settings, gateway_env, load_settings
from ._sidecar import Sidecar, SidecarStartFailure

if TYPE_CHECKING:
    from ._local_model import LocalModelServer

__all__ = ["Gateway", "GatewayLog", "gateway_log_path", "start_gateway", "get_gateway", "close_gateway",
           "is_loopback_host"]

logger = logging.getLogger("aiipython")

#: Where provider ``local`` points until its server has started: the discard port, where nothing
#: listens, so a call that somehow bypasses :meth:`Gateway.ensure_model` fails loudly.
_LOCAL_PLACEHOLDER_URL = "http://127.0.0.1:9/v1"


class Gateway:
    """A running Pi gateway: ``url`` and ``token`` (the client token) to talk to it, ``pid``,
    ``close()``. ``admin_token`` is known only for a gateway this process spawned."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        admin_token: str | None = None,
        process: Sidecar | None = None,
        local_model: LocalModelServer | None = None,
        local_offered: bool = False,
        settings: Settings | None = None,
        info: dict[str, Any] | None = None,
    ) -> None:
        self.url = url
        self.token = token
        self.admin_token = admin_token
        self.info: dict[str, Any] = dict(info or {})
        self._process = process
        self._local_model = local_model
        self._local_offered = local_offered
        self._local_lock = threading.Lock()
        self._settings = settings
        self._closed = False

    @property
    def pid(self) -> int | None:
        """The Node process id (``None`` for an external gateway whose pid is unknown)."""
        if self._process is not None:
            return self._process.pid
        pid = self.info.get("pid")
        return int(pid) if isinstance(pid, int) else None

    @property
    def external(self) -> bool:
        """True when this gateway was not spawned by us (``AIIPYTHON_GATEWAY_URL``)."""
        return self._process is None

    @property
    def local_model(self) -> LocalModelServer | None:
        """The embedded local model server this gateway points at, once one has started."""
        return self._local_model

    def alive(self) -> bool:
        """Cheap liveness check (each call makes it): our Node child still runs (its stdout pipe
        is open and ``poll()`` has not reaped it). An external gateway counts as alive."""
        if self._closed:
            return False
        return self._process is None or not self._process.exited()

    def needs_local_start(self, model: str) -> bool:
        """True when a call to ``model`` must first start the embedded local model (blocking)."""
        if not self._local_offered or not is_local(model):
            return False
        server = self._local_model
        return server is None or not server.alive()

    def ensure_model(self, model: str) -> None:
        """Before a call to ``model``: for ``local/...``, start the embedded model's server if it is
        not running (first use, or it died) and point the gateway's provider ``local`` at it
        (``PUT /providers``). A no-op for every other model. Thread-safe.

        Raises:
            LocalModelError: the local model's server did not start.
            GatewayError: the registration failed (``PiGatewayClient.register_providers``'s
                errors: ``GatewayExitedError`` when the gateway cannot be reached, ...).
        """
        if not self.needs_local_start(model):
            return
        with self._local_lock:
            if not self.needs_local_start(model):
                return
            from . import _local_model
            from ._client import PiGatewayClient

            server = _local_model.get_local_model(self._settings)
            with PiGatewayClient(gateway=self, timeout=30.0) as client:
                client.register_providers({LOCAL_PROVIDER: server.provider_config()})
            self._local_model = server

    def wait(self, timeout: float | None = None) -> int | None:
        """Block until our Node process exits (``timeout`` seconds at most; ``None``: no limit).

        Returns:
            Its exit code; ``None`` when it still runs after ``timeout`` or is external (not ours).
        """
        return self._process.wait(timeout) if self._process is not None else None

    def stderr_tail(self, lines: int = 30) -> str:
        """The last lines the gateway logged (JSON lines, redacted)."""
        return self._process.stderr_tail(lines) if self._process is not None else ""

    @property
    def stderr_count(self) -> int:
        """How many lines our Node process has logged so far (0 for an external gateway)."""
        return self._process.stderr_count if self._process is not None else 0

    def wait_stderr(self, count: int, timeout: float) -> bool:
        """Wait until our Node process has logged ``count`` lines in all (:attr:`stderr_count`),
        at most ``timeout`` seconds; True if it has (False for an external gateway)."""
        return self._process.wait_stderr(count, timeout) if self._process is not None else False

    def close(self) -> None:
        """Stop the Node process (closing its stdin; it exits within 1 s). Idempotent.

        The local model server is shared by the Python process and stays up; it stops at exit.
        """
        self._closed = True
        if self._process is not None:
            self._process.close()

    def __repr__(self) -> str:
        kind = "external" if self.external else f"pid={self.pid}"
        return f"<Gateway {self.url} {kind}{' closed' if self._closed else ''}>"


def _local_model_provider(
    settings: Settings, *, eager: bool
) -> tuple[LocalModelServer | None, dict[str, Any] | None]:
    """The embedded local model's pi provider blocks ``{"local": block}`` (or None when not offered),
    and its server when ``eager`` (else it starts on the first ``local/...`` call)."""
    if settings.local_model == "off":
        return None, None
    from . import _local_model

    reason = _local_model.local_model_missing_reason(settings)
    if reason is not None:
        if settings.local_model == "on":
            raise LocalModelError(f"AIIPYTHON_LOCAL_MODEL=on but {reason}")
        logger.debug("embedded local model not offered: %s", reason)
        return None, None
    server = None
    block = _local_model.provider_block(_LOCAL_PLACEHOLDER_URL)
    if eager:
        try:
            server = _local_model.get_local_model(settings)
            block = server.provider_config()
        except LocalModelError as exc:
            if settings.local_model == "on":
                raise
            logger.warning("The embedded local model could not start; continuing without it: %s", exc)
            return None, None
    return server, {LOCAL_PROVIDER: block}


def is_loopback_host(host: str) -> bool:
    """True for a host name or address that only this machine can reach (``127.0.0.0/8``,
    ``::1``, ``localhost``)."""
    import ipaddress

    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_client_token(token: str) -> None:
    """A client token given by the user (``AIIPYTHON_GATEWAY_TOKEN``) must be a usable bearer
    token that is not trivially guessed."""
    if len(token) < 16 or not token.isascii() or not token.isprintable() or any(c.isspace() for c in token):
        raise ConfigurationError(
            "AIIPYTHON_GATEWAY_TOKEN must be at least 16 printable ASCII characters without spaces "
            "(it is the API key other tools send); unset it to have a random one generated"
        )


def start_gateway(
    settings: Settings | None = None,
    *,
    progress: bool | None = None,
    local_model: Literal["lazy", "eager"] = "lazy",
    host: str = "127.0.0.1",
    port: int = 0,
    token: str | None = None,
    on_stderr: Callable[[str], None] | None = None,
) -> Gateway:
    """Spawn a new gateway process and wait for its readiness line.

    Args:
        settings: defaults to :func:`load_settings` now.
        progress: show npm progress on a terminal (``None`` = when stderr is a terminal).
        local_model: when the embedded model is offered (``AIIPYTHON_LOCAL_MODEL``), start its
            server on the first ``local/...`` call (``lazy``, about 0.5 s then) or now (``eager``,
            for a gateway other processes use).
        host: the address to listen on. Anything but loopback exposes the gateway (and the
            credentials behind it) to the network; only ``aiipython serve --allow-remote`` asks for it.
        port: the TCP port; 0 lets the system pick a free one.
        token: the client token (the API key other tools send); ``None``: a fresh random one. The
            admin token is always fresh and never leaves this process.
        on_stderr: called with each line the gateway logs (JSON lines, tokens redacted) as it
            arrives, from a reader thread; what is logged follows ``AIIPYTHON_GATEWAY_LOG_LEVEL``.

    Returns:
        A started :class:`Gateway` (not registered as the process's gateway).

    Raises:
        NodeNotFoundError: no Node >= 22.19 (message says how to get one).
        GatewayInstallError: ``npm ci`` failed (message has npm's tail and what to do).
        LocalModelError: ``AIIPYTHON_LOCAL_MODEL=on`` and the local model cannot start.
        ConfigurationError: ``AIIPYTHON_GATEWAY_PROVIDERS`` defines the embedded model's provider
            id, ``token`` is shorter than 16 characters or has spaces, or ``port`` is out of range.
        GatewayStartError: the process exited or was silent for ``AIIPYTHON_START_TIMEOUT``
            seconds (message has the tail of its stderr), or ``port`` is in use.
    """
    from ._node import find_node, install_gateway

    if not 0 <= port <= 65535:
        raise ConfigurationError(f"port {port} is out of range: 0 (any free port) to 65535")
    if token is not None:
        _check_client_token(token)
    settings = settings or load_settings()
    runtime = find_node(settings)
    install = install_gateway(settings, runtime, progress=progress)
    server, embedded = _local_model_provider(settings, eager=local_model == "eager")
    token, admin_token = token or secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    env = gateway_env(settings, token=token, admin_token=admin_token, embedded_providers=embedded,
                      node_bin_dir=runtime.bin_dir, compile_cache=install.root / "compile-cache")
    sidecar = Sidecar(
        "Pi gateway",
        [str(runtime.node), str(install.server), "--host", host, "--port", str(port)],
        env=env,
        cwd=install.root,
        redact=lambda text: scrub(text, (token, admin_token)),
        on_stderr=on_stderr,
    )
    try:
        info = sidecar.start(settings.start_timeout)
    except SidecarStartFailure as exc:
        if "EADDRINUSE" in exc.stderr_tail:
            raise GatewayStartError(
                f"cannot listen on {host}:{port}: the port is in use (another gateway or server?); "
                "pass another port (`--port N`, or `--port 0` for any free one) or stop what holds it"
            ) from None
        raise GatewayStartError(
            f"The Pi gateway did not start: {exc}.\n--- gateway stderr (last lines) ---\n{exc.stderr_tail}\n---\n"
            f"Node: {runtime.node} ({runtime.version_text}, {runtime.source}); server: {install.server}. "
            "Retry `aiipython gateway start`; if node_modules look broken, delete the cache directory "
            f"{install.root} and run `aiipython gateway install`."
        ) from None
    except OSError as exc:
        raise GatewayStartError(f"could not run {runtime.node}: {exc}; set AIIPYTHON_NODE to a working Node") from exc
    url = info.get("url")
    if not isinstance(url, str) or not url.startswith("http://") or (
            is_loopback_host(host) and not is_loopback_host(urlsplit(url).hostname or "")):
        sidecar.close()
        raise GatewayStartError(f"the gateway's readiness line has no url on {host}: {sorted(info)}")
    return Gateway(url, token, admin_token=admin_token, process=sidecar, local_model=server,
                   local_offered=embedded is not None, settings=settings, info=info)


def gateway_log_path(settings: Settings) -> Path:
    """``<cache>/gateway/gateway.log``: where gateways append their log (``aiipython gateway logs``)."""
    from ._node import cache_root

    return cache_root(settings) / "gateway" / "gateway.log"


class GatewayLog:
    """An ``on_stderr`` sink for :func:`start_gateway`: appends each line to :func:`gateway_log_path`
    (created 0600; lines arrive redacted; the file is opened per line, so nothing is held open and
    several processes append whole lines) and hands it to ``echo`` too when given. A failed write
    is dropped: the log never breaks the gateway."""

    def __init__(self, settings: Settings, echo: Callable[[str], None] | None = None) -> None:
        self.path = gateway_log_path(settings)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._echo = echo

    def __call__(self, line: str) -> None:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, (line + "\n").encode("utf-8", "replace"))
            finally:
                os.close(fd)
        except OSError:
            pass
        if self._echo is not None:
            self._echo(line)


_lock = threading.Lock()
_current: Gateway | None = None
_owner_pid: int | None = None
_atexit_registered = False


def get_gateway() -> Gateway:
    """The process's gateway, started on first use and restarted if it died.

    Thread-safe: concurrent first calls start exactly one process. After ``os.fork`` the child
    starts its own. ``AIIPYTHON_GATEWAY_URL`` + ``AIIPYTHON_GATEWAY_TOKEN`` select an external
    gateway instead (nothing is spawned).

    Raises:
        ConfigurationError: ``AIIPYTHON_GATEWAY_URL`` is set without ``AIIPYTHON_GATEWAY_TOKEN``.
        The errors of :func:`start_gateway`.
    """
    global _current, _owner_pid, _atexit_registered
    gateway = _current
    if gateway is not None and _owner_pid == os.getpid() and gateway.alive():
        return gateway
    with _lock:
        gateway = _current
        if gateway is not None and _owner_pid == os.getpid() and gateway.alive():
            return gateway
        if gateway is not None and _owner_pid == os.getpid():
            logger.info("the Pi gateway (pid %s) is gone; starting a new one", gateway.pid)
            gateway.close()
        settings = load_settings()
        if settings.gateway_url:
            if not settings.gateway_token:
                raise ConfigurationError(
                    "AIIPYTHON_GATEWAY_URL is set but AIIPYTHON_GATEWAY_TOKEN is not; set both to use a "
                    "running gateway, or unset AIIPYTHON_GATEWAY_URL to let aiipython start one"
                )
            gateway = Gateway(settings.gateway_url, settings.gateway_token)
        else:
            log = GatewayLog(settings) if settings.gateway_log_level else None
            gateway = start_gateway(settings, on_stderr=log)
        _current, _owner_pid = gateway, os.getpid()
        if not _atexit_registered:
            atexit.register(close_gateway)
            _atexit_registered = True
        return gateway


def close_gateway() -> None:
    """Stop the process's gateway if one was started (idempotent; runs at interpreter exit)."""
    global _current
    with _lock:
        gateway, _current = _current, None
    if gateway is not None and _owner_pid == os.getpid():
        gateway.close()

