"""``make_lm()``: one call that returns the right ``dspy.LM`` for this machine.

Backend: the argument, else ``AIIPYTHON_LM_BACKEND``, else ``auto``: the Pi gateway when Node, the
gateway and the model all resolve; otherwise LiteLLM with one warning on the ``aiipython`` logger
saying why, but only when LiteLLM can plausibly serve the model (it knows it and its credentials
are set, ``_litellm_names``); else the error the ``pi`` backend would raise (an unknown model is
``ModelNotFoundError`` naming close matches). ``tabminion/*`` always takes LiteLLM. Model: the
argument, else ``AIIPYTHON_MODEL``, else the model pi itself starts with (the gateway's
``default_model``: pi's own rule), else the embedded local model; the choice is one INFO line on
the ``aiipython`` logger.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import _errors as E
from ._gateway_options import GatewayOptions, GatewayTarget, LMClient
from ._model_names import ECHO_PROVIDER, LOCAL_MODEL, LOCAL_PROVIDER, is_local, strip_pi_prefix
from ._settings import BACKENDS, load_settings

if TYPE_CHECKING:
    import dspy

__all__ = ["make_lm", "choose_backend", "BackendChoice"]

logger = logging.getLogger("aiipython")

_LOGIN_HINT = ("log in with `aiipython auth login <provider>` (`aiipython auth login` lists them), or set a "
               "provider's API key such as ANTHROPIC_API_KEY or OPENAI_API_KEY")


_START_FAILURES = (
    (E.NodeNotFoundError, "no usable Node.js was found"),
    (E.GatewayInstallError, "installing the Pi gateway's npm packages failed"),
    (E.GatewayStartError, "the Pi gateway did not start"),
    (E.GatewayError, "the Pi gateway failed"),
)


class _Fallback(Exception):
    """Why ``auto`` cannot use the Pi gateway: ``reason`` (the warning's text when LiteLLM takes
    over), ``model`` (the name LiteLLM would get) and ``error`` (what the ``pi`` backend raises)."""

    def __init__(self, reason: str, model: str | None, error: E.AiipythonError) -> None:
        super().__init__(reason)
        self.reason, self.model, self.error = reason, model, error


@dataclass(frozen=True)
class BackendChoice:
    """What :func:`choose_backend` decided: the backend, the model on it, and why."""

    #: ``"pi"`` or ``"litellm"``.
    backend: str
    #: pi's ``provider/id`` (``pi`` backend) or LiteLLM's model name.
    model: str
    #: Why ``auto`` took LiteLLM (the warning's text); None otherwise.
    reason: str | None = None
    #: pi's ``/models`` entry for the model (``pi`` backend).
    info: Mapping[str, Any] | None = None
    #: The gateway that was asked, for the LM to call (``pi`` backend).
    target: GatewayTarget | None = None


def choose_backend(model: str | None = None, *, backend: str | None = None,
                   gateway: GatewayOptions | None = None) -> BackendChoice:
    """Decide the backend and model as :func:`make_lm` does, without building an LM (the typed
    API calls it too: one rule). The Pi gateway is started (or reached) to ask pi.

    Args:
        model, backend: as for :func:`make_lm`.
        gateway: where the Pi backend's calls go (``client`` or ``gateway_url`` + ``gateway_token``).

    Raises:
        As :func:`make_lm`.
    """
    settings = load_settings()
    chosen = (backend if backend is not None else settings.lm_backend).strip().lower()
    if chosen not in BACKENDS:
        raise E.ConfigurationError(f"unknown LM backend {backend!r}; use one of: {', '.join(BACKENDS)}")
    name = strip_pi_prefix(model or settings.model or "") or None
    gateway = gateway or GatewayOptions()
    if name and name.startswith("tabminion/"):
        return BackendChoice("litellm", name)
    if chosen == "litellm":
        if gateway.given:
            raise E.ConfigurationError(f"{gateway.given} configure the Pi gateway, not the litellm backend")
        if not name:
            raise E.ConfigurationError("no model for the litellm backend: pass make_lm(model=...) or set "
                                       "AIIPYTHON_MODEL to a LiteLLM name such as openai/gpt-4o")
        return BackendChoice("litellm", name)
    if chosen == "pi":
        return _pi_choice(name, gateway, auto=False)
    try:
        return _pi_choice(name, gateway, auto=True)
    except _Fallback as fallback:
        return _litellm_fallback(name, fallback)


def _litellm_fallback(name: str | None, fallback: _Fallback) -> BackendChoice:
    """``auto`` could not use pi: LiteLLM when it can plausibly serve the model (it knows the model
    and its credentials are set; ``_litellm_names``), else the error the ``pi`` backend raises."""
    from ._litellm_names import litellm_verdict

    model = name or fallback.model
    if not model:
        raise _with_note(fallback.error, "No model was named for a LiteLLM fallback: pass --model / "
                                         "make_lm(model=...) or set AIIPYTHON_MODEL.") from fallback.error.__cause__
    verdict = litellm_verdict(model)
    if verdict.can_serve:
        return BackendChoice("litellm", model, reason=fallback.reason)
    if isinstance(fallback.error, E.ModelNotFoundError) and not verdict.known:
        close = fallback.error.candidates
        raise E.ModelNotFoundError(
            f"unknown model {model!r}: neither pi nor LiteLLM knows it"
            + (f"; did you mean {', '.join(close)}?" if close else ";")
            + " `aiipython models` lists the models pi knows", model=model, candidates=close)
    if isinstance(fallback.error, E.ModelNotFoundError):
        raise E.ProviderNotConfiguredError(
            f"pi does not know the model {model!r} and {verdict.why_not()}: set it to call the model through "
            "LiteLLM (`aiipython models` lists the models pi knows)", model=model, provider=verdict.provider)
    if isinstance(fallback.error, E.ProviderNotConfiguredError):
        raise fallback.error  # its message names the login and the variables already
    raise _with_note(fallback.error, f"(auto backend: no LiteLLM fallback for {model!r}: "
                                     f"{verdict.why_not()})") from fallback.error.__cause__


def _with_note(exc: E.AiipythonError, note: str) -> E.AiipythonError:
    """``exc`` again (same class and fields) with ``note`` on a line of its own after the message."""
    return type(exc)(f"{exc.message}\n{note}", code=exc.code, status=exc.status, model=exc.model,
                     provider=exc.provider, request_id=exc.request_id, retry_after=exc.retry_after,
                     candidates=exc.candidates)


def make_lm(model: str | None = None, *, backend: str | None = None, **kwargs: Any) -> dspy.LM:
    """Return a ``dspy.LM`` for ``model`` on the chosen backend (:func:`choose_backend`).

    Args:
        model: ``provider/id`` as pi names it (``anthropic/claude-sonnet-4-5``; a ``pi/`` prefix is
            accepted), or a LiteLLM name on the ``litellm`` backend. Default: ``AIIPYTHON_MODEL``,
            then the model pi starts with (settings.json's default, else pi's default model of the
            first provider with credentials; never ``echo/echo``; ``local`` last), then the
            embedded local model ``local/smollm2-135m`` (docs/backends.md "Model").
        backend: ``auto`` | ``pi`` | ``litellm``; default ``AIIPYTHON_LM_BACKEND``, else ``auto``.
        **kwargs: ``dspy.LM`` arguments (``temperature``, ``max_tokens`` in tokens, ``cache``,
            ``num_retries``, ...). For the Pi backend also ``client``, ``gateway_url`` +
            ``gateway_token`` and ``gateway_timeout`` (seconds), see :class:`PiGatewayLM`.

    Returns:
        A :class:`PiGatewayLM` (model ``pi/<provider>/<id>``) or a :class:`StreamingLM`.

    Raises:
        aiipython.ConfigurationError: an unknown backend (the message lists the valid ones), no
            model anywhere (the message says how to log in), or ``api_key``/``api_base`` on a
            backend other than ``litellm`` ("pi owns the credentials", and how to give them).
        aiipython.NodeNotFoundError, GatewayInstallError, GatewayStartError: the gateway cannot
            start (``pi``; ``auto`` too when LiteLLM cannot serve the model).
        aiipython.ModelNotFoundError, AmbiguousModelError: pi does not know the model (``pi``; on
            ``auto`` when LiteLLM does not know it either), or several providers have a bare id.
        aiipython.ProviderNotConfiguredError: no credentials for the provider (``pi``; ``auto`` when
            LiteLLM has none for it either).
    """
    gateway = GatewayOptions.pop(kwargs)
    wanted = (backend if backend is not None else load_settings().lm_backend).strip().lower()
    name = model or load_settings().model or ""
    if wanted != "litellm" and not strip_pi_prefix(name).startswith("tabminion/"):
        from ._lm import refuse_connection_kwargs

        refuse_connection_kwargs(name, kwargs)  # before asking pi: the key would be ignored
    choice = choose_backend(model, backend=backend, gateway=gateway)
    if choice.backend == "litellm":
        if choice.reason:
            logger.warning(
                "make_lm: using LiteLLM (StreamingLM) for %r because %s. Set AIIPYTHON_LM_BACKEND=pi to make "
                "this an error, or AIIPYTHON_LM_BACKEND=litellm to choose LiteLLM without this warning.",
                choice.model, choice.reason.rstrip("."),
            )
        return _litellm_lm(choice.model, kwargs)
    from ._lm import PiGatewayLM

    return PiGatewayLM(choice.model, target=choice.target, gateway_timeout=gateway.timeout, model_info=choice.info,
                       **kwargs)


def _litellm_lm(name: str, kwargs: dict[str, Any]) -> dspy.LM:
    from ._streaming_lm import StreamingLM

    return StreamingLM(name, **kwargs)


def _first_line(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return text.strip().splitlines()[0]


def _pi_choice(name: str | None, gateway: GatewayOptions, *, auto: bool) -> BackendChoice:
    target = gateway.target()
    try:
        client = target.client()
        listing = client.list_models()
    except E.GatewayError as exc:
        if not auto:
            raise
        reason = next(text for cls, text in _START_FAILURES if isinstance(exc, cls))
        # No Node: the whole message (the three places searched); otherwise its first line.
        detail = exc.message.strip() if isinstance(exc, E.NodeNotFoundError) else _first_line(exc)
        raise _Fallback(f"{reason}: {detail}", None, exc) from exc
    full, info = _resolve(name, listing, auto=auto)
    if not info.get("available"):
        message = _no_credentials(client, info["provider"])
        error = E.ProviderNotConfiguredError(message, model=full, provider=info["provider"])
        if auto:
            raise _Fallback(message, full, error)
        raise error
    return BackendChoice("pi", full, info=info, target=target)


def _resolve(name: str | None, listing: Mapping[str, Any], *, auto: bool) -> tuple[str, dict[str, Any]]:
    """(``provider/id``, its ``/models`` entry) for ``name`` or the default model."""
    models: list[dict[str, Any]] = [m for m in listing.get("models") or [] if isinstance(m, dict)]
    by_name = {f"{m.get('provider')}/{m.get('id')}": m for m in models}
    if name:
        wanted = strip_pi_prefix(name)
        if wanted in by_name:
            return wanted, by_name[wanted]
        same_id = [full for full, m in by_name.items() if m.get("id") == wanted]
        if len(same_id) == 1:
            return same_id[0], by_name[same_id[0]]
        if len(same_id) > 1:
            raise E.AmbiguousModelError(f"several providers have the model {wanted!r}: {', '.join(same_id)}; "
                                        "name one as provider/id", model=wanted, candidates=same_id)
        if is_local(wanted) and not any(full.startswith(f"{LOCAL_PROVIDER}/") for full in by_name):
            raise E.LocalModelError(f"cannot use {wanted}: {_local_model_reason()}", model=wanted)
        close = difflib.get_close_matches(wanted, list(by_name), n=5, cutoff=0.5)
        message = f"pi does not know the model {wanted!r}" + (f" (close: {', '.join(close)})" if close else "")
        error = E.ModelNotFoundError(message + "; `aiipython models` lists the models pi knows",
                                     model=wanted, candidates=close)
        if auto:
            raise _Fallback(message, wanted, error)
        raise error
    warning = listing.get("default_model_warning")
    if isinstance(warning, str) and warning:
        logger.warning("make_lm: %s", warning)
    default = listing.get("default_model")
    full, why = "", ""
    if isinstance(default, Mapping):
        named = f"{default.get('provider')}/{default.get('id')}"
        chosen_by_pi = default.get("source") != "settings"
        # pi takes provider local's first model when nothing else has credentials: the embedded one is meant
        local_pick = chosen_by_pi and named.startswith(f"{LOCAL_PROVIDER}/") and LOCAL_MODEL in by_name
        if named in by_name and not named.startswith(f"{ECHO_PROVIDER}/") and not local_pick:  # echo: only named
            full = named
            why = ("pi's default model (settings.json)" if not chosen_by_pi
                   else f"the model pi starts with for provider {default.get('provider')!r}")
    if not full and LOCAL_MODEL in by_name:
        full, why = LOCAL_MODEL, "the embedded local model: pi has no credentials for any provider"
    if not full:
        full = next((f for f in by_name if f.startswith(f"{LOCAL_PROVIDER}/")), "")
        why = "the local provider: pi has no credentials for any other"
    if full:
        logger.info("make_lm: using %s (%s)", full, why)
        return full, by_name[full]
    raise E.ConfigurationError(
        f"no model to use: pi has no credentials for any provider, and {_local_model_reason()} To fix: "
        f"{_LOGIN_HINT}; or pass make_lm(model=...) / set AIIPYTHON_MODEL"
    )


def _local_model_reason() -> str:
    """Why the embedded local model is not offered, one sentence ending in a period."""
    settings = load_settings()
    if settings.local_model == "off":
        return "the embedded local model is off (AIIPYTHON_LOCAL_MODEL=off; unset it to offer the model)."
    from ._local_model import local_model_missing_reason

    reason = local_model_missing_reason(settings)
    if reason is None:  # installed, yet pi does not list it: its gateway was started without it
        return "the embedded local model is installed but this gateway does not offer it (AIIPYTHON_GATEWAY_URL?)."
    return f"the embedded local model is not available: {reason}"


def _no_credentials(client: LMClient, provider: str) -> str:
    env_vars: list[str] = []
    try:
        status = client.auth_status()
        entry: dict[str, Any] = next(
            (p for p in status.get("providers") or [] if p.get("provider") == provider), {}
        )
        env_vars = [str(v) for v in entry.get("env_vars") or []]
    except E.GatewayError:
        pass  # the hint below is still right, only less specific
    how = f"set {' or '.join(env_vars)}" if env_vars else "add an apiKey for it in pi's models.json"
    return f"pi has no credentials for provider {provider!r}: run `aiipython auth login {provider}`, or {how}"
