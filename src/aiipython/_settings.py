"""Every setting aiipython reads, in one place.

Only this module reads ``AIIPYTHON_*`` and ``PI_CODING_AGENT_DIR``. Values are read at call time
(never at import) into a frozen :class:`Settings`; an explicit argument wins over the environment,
which wins over the default. Provider API keys are pi's business and are never read here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._errors import ConfigurationError

__all__ = ["BACKENDS", "Settings", "load_settings", "gateway_env"]

#: The gateway's log levels (docs/protocol.md "Launch").
_LOG_LEVELS = ("debug", "info", "warn", "error", "silent")

#: Valid values of ``AIIPYTHON_LM_BACKEND`` / ``--lm-backend`` / ``make_lm(backend=...)``.
BACKENDS = ("auto", "pi", "litellm")


@dataclass(frozen=True)
class Settings:
    """A snapshot of aiipython's settings (see README "Environment variables")."""

    #: ``AIIPYTHON_LM_BACKEND``: ``auto`` (default), ``pi`` or ``litellm``.
    lm_backend: str = "auto"
    #: ``AIIPYTHON_MODEL``: default model name, e.g. ``anthropic/claude-sonnet-4-5``.
    model: str | None = None
    #: ``AIIPYTHON_NODE``: path of a Node >= 22.19 to use instead of searching.
    node: str | None = None
    #: ``AIIPYTHON_GATEWAY_URL`` + ``AIIPYTHON_GATEWAY_TOKEN``: use a running gateway, spawn none.
    gateway_url: str | None = None
    gateway_token: str | None = None
    #: ``AIIPYTHON_CACHE_DIR``: where node_modules are installed (default: platformdirs cache).
    cache_dir: Path | None = None
    #: ``AIIPYTHON_START_TIMEOUT``: seconds a sidecar may take to print its readiness line.
    start_timeout: float = 60.0
    #: ``AIIPYTHON_REQUEST_TIMEOUT``: seconds one gateway call may take (upstream timeout).
    request_timeout: float = 600.0
    #: ``AIIPYTHON_LOCAL_MODEL``: ``auto`` (start it when installed), ``on`` (must work), ``off``.
    local_model: str = "auto"
    #: ``AIIPYTHON_LOCAL_MODEL_PATH``: a GGUF file to serve instead of the packaged SmolLM2.
    local_model_path: Path | None = None
    #: ``PI_CODING_AGENT_DIR``: pi's agent dir (default ``~/.pi/agent``), passed to the gateway.
    pi_agent_dir: Path | None = None
    #: ``AIIPYTHON_GATEWAY_MAX_INFLIGHT``: model calls a spawned gateway runs at once (None: its default).
    gateway_max_inflight: int | None = None
    #: ``AIIPYTHON_GATEWAY_MAX_QUEUE``: model calls that may wait for a slot before 503 (None: default).
    gateway_max_queue: int | None = None
    #: ``AIIPYTHON_GATEWAY_WORKERS``: gateway worker processes, a count or ``auto`` (None: default).
    gateway_workers: str | None = None
    #: ``AIIPYTHON_GATEWAY_PROVIDERS``: extra pi provider blocks ``{"<id>": <models.json provider
    #: block>}`` for a gateway aiipython spawns, merged with the embedded local model's (None: none).
    gateway_providers: Mapping[str, Any] | None = None
    #: ``AIIPYTHON_GATEWAY_LOG_LEVEL``: the gateway's log level when the user set one (None: not
    #: set; a spawned gateway then logs ``warn``). When set, every gateway this machine's Python
    #: spawns appends its log to ``<cache>/gateway/gateway.log`` (``aiipython gateway logs``).
    gateway_log_level: str | None = None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a number of seconds; unset it or give e.g. 30") from None
    if value <= 0:
        raise ConfigurationError(f"{name}={raw!r} must be a positive number of seconds")
    return value


def _int(env: Mapping[str, str], name: str, minimum: int) -> int | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a whole number; unset it or give e.g. 64") from None
    if value < minimum:
        raise ConfigurationError(f"{name}={raw!r} must be at least {minimum}")
    return value


def _workers(env: Mapping[str, str]) -> str | None:
    raw = env.get("AIIPYTHON_GATEWAY_WORKERS", "").strip().lower()
    if not raw or raw == "auto":
        return raw or None
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigurationError(f"AIIPYTHON_GATEWAY_WORKERS={raw!r} must be a whole number >= 1 or 'auto'")
    return str(int(raw))


_PROVIDERS_SHAPE = '{"providers": {"<id>": <pi models.json provider block>}}'


def _providers(env: Mapping[str, str]) -> Mapping[str, Any] | None:
    """The provider blocks in ``AIIPYTHON_GATEWAY_PROVIDERS``; errors quote none of it (keys)."""
    name = "AIIPYTHON_GATEWAY_PROVIDERS"
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(
            f"{name} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}; give {_PROVIDERS_SHAPE}"
        ) from None
    providers = value.get("providers") if isinstance(value, dict) else None
    if not isinstance(providers, dict) or not all(isinstance(block, dict) for block in providers.values()):
        raise ConfigurationError(f"{name} must be {_PROVIDERS_SHAPE}")
    return providers


def _path(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name, "").strip()
    return Path(raw).expanduser() if raw else None


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    raw = env.get(name, "").strip().lower() or default
    if raw not in choices:
        raise ConfigurationError(f"{name}={raw!r} is not one of {', '.join(choices)}; set one of them or unset it")
    return raw


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read the settings from ``env`` (default ``os.environ``) now.

    Raises:
        ConfigurationError: a variable holds a value it cannot take; the message (one line) names
            the variable, its value and the fix. It is also a ``ValueError``.
    """
    env = os.environ if env is None else env
    return Settings(
        lm_backend=_choice(env, "AIIPYTHON_LM_BACKEND", BACKENDS, "auto"),
        model=env.get("AIIPYTHON_MODEL", "").strip() or None,
        node=env.get("AIIPYTHON_NODE", "").strip() or None,
        gateway_url=env.get("AIIPYTHON_GATEWAY_URL", "").strip().rstrip("/") or None,
        gateway_token=env.get("AIIPYTHON_GATEWAY_TOKEN", "").strip() or None,
        cache_dir=_path(env, "AIIPYTHON_CACHE_DIR"),
        start_timeout=_float(env, "AIIPYTHON_START_TIMEOUT", 60.0),
        request_timeout=_float(env, "AIIPYTHON_REQUEST_TIMEOUT", 600.0),
        local_model=_choice(env, "AIIPYTHON_LOCAL_MODEL", ("auto", "on", "off"), "auto"),
        local_model_path=_path(env, "AIIPYTHON_LOCAL_MODEL_PATH"),
        pi_agent_dir=_path(env, "PI_CODING_AGENT_DIR"),
        gateway_max_inflight=_int(env, "AIIPYTHON_GATEWAY_MAX_INFLIGHT", 1),
        gateway_max_queue=_int(env, "AIIPYTHON_GATEWAY_MAX_QUEUE", 0),
        gateway_workers=_workers(env),
        gateway_providers=_providers(env),
        gateway_log_level=(_choice(env, "AIIPYTHON_GATEWAY_LOG_LEVEL", _LOG_LEVELS, "")
                           if env.get("AIIPYTHON_GATEWAY_LOG_LEVEL", "").strip() else None),
    )


def gateway_env(
    settings: Settings,
    *,
    token: str,
    admin_token: str | None = None,
    embedded_providers: Mapping[str, Any] | None = None,
    node_bin_dir: Path | None = None,
    compile_cache: Path | None = None,
) -> dict[str, str]:
    """The environment for the gateway child: ours plus the tokens and extra providers.

    ``AIIPYTHON_GATEWAY_PROVIDERS`` carries the user's provider blocks (``settings.gateway_providers``)
    merged with ``embedded_providers`` (the embedded local model's ``{"<id>": block}``); a user block
    with an embedded provider's id is refused (:class:`~aiipython.ConfigurationError`), never dropped
    or replaced. ``AIIPYTHON_GATEWAY_PROVIDERS_FILE`` passes through; the gateway merges the two.

    The tokens travel in the environment, never on the command line (docs/protocol.md "Launch");
    without ``admin_token`` the gateway's admin routes (``PUT /providers``) are unreachable.
    Our own ``AIIPYTHON_GATEWAY_URL`` is removed so the child never mistakes itself for a client.
    The gateway logs only problems (``warn``) unless ``AIIPYTHON_GATEWAY_LOG_LEVEL`` says
    otherwise: a line per request would cost the parent a stderr read per call. Node's compile
    cache (``NODE_COMPILE_CACHE``) goes to ``compile_cache`` unless already set; it shortens start-up.
    """
    env = dict(os.environ)
    env.setdefault("AIIPYTHON_GATEWAY_LOG_LEVEL", "warn")
    if compile_cache is not None:
        env.setdefault("NODE_COMPILE_CACHE", str(compile_cache))
    env.pop("AIIPYTHON_GATEWAY_URL", None)
    env["AIIPYTHON_GATEWAY_TOKEN"] = token
    if admin_token is not None:
        env["AIIPYTHON_GATEWAY_ADMIN_TOKEN"] = admin_token
    else:
        env.pop("AIIPYTHON_GATEWAY_ADMIN_TOKEN", None)
    env["AIIPYTHON_GATEWAY_TIMEOUT_MS"] = str(int(settings.request_timeout * 1000))
    env["PI_OFFLINE"] = "1"
    if settings.pi_agent_dir is not None:
        env["PI_CODING_AGENT_DIR"] = str(settings.pi_agent_dir)
    for name, value in (
        ("AIIPYTHON_GATEWAY_MAX_INFLIGHT", settings.gateway_max_inflight),
        ("AIIPYTHON_GATEWAY_MAX_QUEUE", settings.gateway_max_queue),
        ("AIIPYTHON_GATEWAY_WORKERS", settings.gateway_workers),
    ):
        if value is None:
            env.pop(name, None)
        else:
            env[name] = str(value)
    providers = dict(settings.gateway_providers or {})
    for provider_id, block in (embedded_providers or {}).items():
        if provider_id in providers:
            raise ConfigurationError(
                f'AIIPYTHON_GATEWAY_PROVIDERS defines provider "{provider_id}", the embedded local model\'s id: '
                "give your provider another id, or set AIIPYTHON_LOCAL_MODEL=off to run without the embedded model"
            )
        providers[provider_id] = block
    if providers:
        env["AIIPYTHON_GATEWAY_PROVIDERS"] = json.dumps({"providers": providers})
    else:
        env.pop("AIIPYTHON_GATEWAY_PROVIDERS", None)
    if node_bin_dir is not None:
        env["PATH"] = f"{node_bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return env
