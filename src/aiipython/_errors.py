"""aiipython's exceptions: one tree, one envelope mapping, one retry test.

::

    AiipythonError
    ├── ConfigurationError            bad setting or argument (unknown backend, no model, ...)
    ├── LocalModelError               the embedded local model is missing or failed to start
    └── GatewayError                  anything about the Pi gateway
        ├── GatewayStartError         the sidecar could not be installed or started
        │   ├── NodeNotFoundError     no Node >= 22.19 anywhere
        │   └── GatewayInstallError   ``npm ci`` failed
        ├── GatewayExitedError        the sidecar died during a call
        ├── GatewayClosedError        the gateway/client was used after close()
        ├── GatewayProtocolError      a reply that does not follow docs/protocol.md
        ├── GatewayUnavailableError   503: the gateway is shutting down
        │   └── GatewayOverloadedError  503: the gateway is at capacity (``retry_after`` seconds)
        ├── AuthenticationError       401: wrong or missing gateway token
        ├── PermissionDeniedError     403: a client token on an admin-only route
        ├── InvalidRequestError       400: the request itself is wrong
        │   ├── AmbiguousModelError   400: a bare model id several providers have
        │   └── ContextWindowExceededError  400: the prompt does not fit the model
        ├── ProviderNotConfiguredError  403: pi has no credentials for the provider
        ├── ModelNotFoundError        404: pi does not know the model
        ├── ProviderNotFoundError     404: pi has no such provider (to log in to)
        ├── RequestTooLargeError      413: body over the gateway's limit
        ├── RateLimitError            429: upstream rate limit (``retry_after`` seconds)
        ├── UpstreamError             502: the provider failed
        │   └── UpstreamAuthError     502: the provider refused pi's credentials
        ├── UpstreamTimeoutError      504: the provider did not answer in time
        └── LoginError                502/409: pi's login failed, or one is already running
            ├── LoginCancelledError   409: the login was cancelled (DELETE, or its client left)
            └── LoginTimeoutError     504: the login did not finish in time

Envelope types and statuses follow docs/protocol.md "Errors". Messages never hold secrets: the
gateway redacts its own, and :func:`error_from_envelope` scrubs the gateway token once more.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AiipythonError",
    "ConfigurationError",
    "LocalModelError",
    "GatewayError",
    "GatewayStartError",
    "NodeNotFoundError",
    "GatewayInstallError",
    "GatewayExitedError",
    "GatewayClosedError",
    "GatewayProtocolError",
    "GatewayUnavailableError",
    "GatewayOverloadedError",
    "AuthenticationError",
    "PermissionDeniedError",
    "InvalidRequestError",
    "AmbiguousModelError",
    "ContextWindowExceededError",
    "ProviderNotConfiguredError",
    "ModelNotFoundError",
    "ProviderNotFoundError",
    "RequestTooLargeError",
    "RateLimitError",
    "UpstreamError",
    "UpstreamAuthError",
    "UpstreamTimeoutError",
    "LoginError",
    "LoginCancelledError",
    "LoginTimeoutError",
    "error_from_envelope",
    "is_retryable",
]


class AiipythonError(Exception):
    """Base of every aiipython error; carries what is known about the failed call."""

    default_code = "aiipython_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        model: str | None = None,
        provider: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        candidates: list[str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.status = status
        self.model = model
        self.provider = provider
        self.request_id = request_id
        self.retry_after = retry_after
        self.candidates = list(candidates or [])


class ConfigurationError(AiipythonError, ValueError):
    """A setting or argument aiipython cannot use; the message says which and what to do."""

    default_code = "configuration_error"


class LocalModelError(AiipythonError):
    """The embedded local model is not installed or its server failed to start."""

    default_code = "local_model_error"


class GatewayError(AiipythonError):
    """Base of every error about the Pi gateway or a call made through it."""

    default_code = "gateway_error"


class GatewayStartError(GatewayError):
    """The gateway sidecar could not be started; the message holds the tail of its stderr."""

    default_code = "gateway_start_error"


class NodeNotFoundError(GatewayStartError):
    """No usable Node.js (>= 22.19) was found; the message says how to get one."""

    default_code = "node_not_found"


class GatewayInstallError(GatewayStartError):
    """``npm ci`` of the gateway's packages failed; the message holds the tail of npm's output."""

    default_code = "gateway_install_error"


class GatewayExitedError(GatewayError):
    """The gateway process died while a call was in flight."""

    default_code = "gateway_exited"


class GatewayClosedError(GatewayError, RuntimeError):
    """The gateway or client was used after ``close()``."""

    default_code = "gateway_closed"


class GatewayProtocolError(GatewayError):
    """The gateway answered something docs/protocol.md does not allow."""

    default_code = "gateway_protocol_error"


class GatewayUnavailableError(GatewayError):
    """503: the gateway is shutting down."""

    default_code = "shutting_down"


class GatewayOverloadedError(GatewayUnavailableError):
    """503: the gateway is at capacity (admission control); retry after ``retry_after`` seconds.

    Raised when every slot for model calls (``AIIPYTHON_GATEWAY_MAX_INFLIGHT``) is taken and the
    wait queue (``AIIPYTHON_GATEWAY_MAX_QUEUE``) is full; nothing was sent to the provider.
    """

    default_code = "overloaded"


class AuthenticationError(GatewayError):
    """401: the gateway token was missing or wrong (``AIIPYTHON_GATEWAY_TOKEN``)."""

    default_code = "unauthorized"


class PermissionDeniedError(GatewayError):
    """403: the token is right but its scope is not: a client token on an admin-only route
    (``PUT /providers``, logins); docs/architecture.md "Security"."""

    default_code = "forbidden"


class InvalidRequestError(GatewayError, ValueError):
    """400: the request is malformed or holds something the gateway cannot carry."""

    default_code = "invalid_request"


class AmbiguousModelError(InvalidRequestError):
    """400: a bare model id that several providers serve; ``candidates`` lists them."""

    default_code = "ambiguous_model"


class ContextWindowExceededError(InvalidRequestError):
    """400: the prompt does not fit the model's context window."""

    default_code = "context_window_exceeded"


class ProviderNotConfiguredError(GatewayError):
    """403: pi has no credentials for the provider; log in (``aiipython auth login <provider>``,
    :func:`aiipython.login`) or set its env var."""

    default_code = "provider_not_configured"


class ModelNotFoundError(GatewayError, LookupError):
    """404: pi does not know the model; ``candidates`` lists close matches."""

    default_code = "model_not_found"


class ProviderNotFoundError(GatewayError, LookupError):
    """404 ``unknown_provider``: pi has no provider of that id (to log in to or out of);
    ``candidates`` lists the providers pi can log in to."""

    default_code = "unknown_provider"


class RequestTooLargeError(GatewayError):
    """413: the request body is over the gateway's limit (default 50 MB)."""

    default_code = "request_too_large"


class RateLimitError(GatewayError):
    """429: the provider rate-limited the call; ``retry_after`` is in seconds when known."""

    default_code = "rate_limit"


class UpstreamError(GatewayError):
    """502: the provider failed (5xx, connection error, malformed reply)."""

    default_code = "upstream_error"


class UpstreamAuthError(UpstreamError):
    """502: the provider refused the credentials pi sent (expired or wrong key)."""

    default_code = "upstream_auth_error"


class UpstreamTimeoutError(GatewayError, TimeoutError):
    """504: the provider did not answer within the request timeout."""

    default_code = "upstream_timeout"


class LoginError(GatewayError):
    """A login through pi did not complete: pi's flow failed (``code`` ``login_failed``, 502:
    the provider refused, the pasted code was wrong...) or a login to the same provider is already
    running in the gateway (``conflict``, 409; the message names the flow to finish or cancel).
    The message is pi's reason, redacted (no code, token or key)."""

    default_code = "login_failed"


class LoginCancelledError(LoginError):
    """409 ``login_cancelled``: the login was cancelled (``DELETE /auth/login/{id}``, or the
    client reading its events went away) before it completed; nothing was stored."""

    default_code = "login_cancelled"


class LoginTimeoutError(LoginError, TimeoutError):
    """504 ``login_timeout``: the login did not finish within its time bound (10 min at most,
    docs/protocol.md "Logging in") and the gateway stopped it; nothing was stored."""

    default_code = "login_timeout"


_BY_TYPE: dict[str, type[GatewayError]] = {
    "invalid_request": InvalidRequestError,
    "ambiguous_model": AmbiguousModelError,
    "context_window_exceeded": ContextWindowExceededError,
    "unauthorized": AuthenticationError,
    "forbidden": PermissionDeniedError,
    "provider_not_configured": ProviderNotConfiguredError,
    "model_not_found": ModelNotFoundError,
    "unknown_provider": ProviderNotFoundError,
    "not_found": GatewayProtocolError,
    "conflict": LoginError,
    "login_failed": LoginError,
    "login_cancelled": LoginCancelledError,
    "login_timeout": LoginTimeoutError,
    "request_too_large": RequestTooLargeError,
    "rate_limit": RateLimitError,
    "upstream_auth_error": UpstreamAuthError,
    "upstream_error": UpstreamError,
    "shutting_down": GatewayUnavailableError,
    "overloaded": GatewayOverloadedError,
    "upstream_timeout": UpstreamTimeoutError,
    "internal_error": GatewayError,
}

_BY_STATUS: dict[int, type[GatewayError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: ProviderNotConfiguredError,
    404: ModelNotFoundError,
    409: LoginError,
    413: RequestTooLargeError,
    429: RateLimitError,
    502: UpstreamError,
    503: GatewayUnavailableError,
    504: UpstreamTimeoutError,
}


#: Statuses of the envelope types that share a class with another status (an SSE ``error`` frame
#: carries no status; node_gateway/errors.mjs ``ERROR_TYPES`` is the table).
_STATUS_OF: dict[str, int] = {
    "unknown_provider": 404, "conflict": 409, "login_failed": 502, "login_cancelled": 409, "login_timeout": 504,
}


#: Shorter strings are not secrets (the gateway refuses client tokens under 16 characters), and
#: scrubbing them would rewrite ordinary words (a token "a" in "gateway").
MIN_SECRET_LENGTH = 16


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with each whole occurrence of each secret (>= :data:`MIN_SECRET_LENGTH` characters,
    not part of a longer run of token characters ``[A-Za-z0-9_.~+/=-]``) replaced by ``[redacted]``."""
    import re

    for secret in secrets:
        if secret and len(secret) >= MIN_SECRET_LENGTH:
            text = re.sub(rf"(?<![A-Za-z0-9_.~+/=-]){re.escape(secret)}(?![A-Za-z0-9_.~+/=-])", "[redacted]", text)
    return text


def error_from_envelope(
    status: int | None,
    body: Any,
    *,
    model: str | None = None,
    request_id: str | None = None,
    retry_after_header: str | None = None,
    secrets: tuple[str, ...] = (),
) -> GatewayError:
    """Turn a gateway error response into the matching exception (not raised).

    Args:
        status: HTTP status of the response; ``None`` for an SSE ``error`` frame (derived from
            the envelope's type).
        body: the decoded JSON body, ideally ``{"error": {"type", "message", ...}}``.
        model: the model the call named, for the exception's ``model``/``provider``.
        request_id: the response's ``x-request-id``.
        retry_after_header: the ``Retry-After`` header, used when the envelope has none.
        secrets: strings that must never appear in the message (the gateway token).

    Returns:
        The most specific :class:`GatewayError` subclass for the envelope's ``type``, else for
        ``status``; a body that is not an envelope gives :class:`GatewayProtocolError`.
    """
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict) or not isinstance(err.get("message"), str):
        cls: type[GatewayError] = _BY_STATUS.get(status or 0, GatewayProtocolError)
        return cls(
            f"gateway answered HTTP {status} without an error envelope",
            status=status,
            model=model,
            request_id=request_id,
        )
    etype = str(err.get("type") or "")
    cls = _BY_TYPE.get(etype) or (_BY_STATUS.get(status) if status else None) or GatewayError
    if status is None:
        status = _STATUS_OF.get(etype) or next((s for s, c in _BY_STATUS.items() if issubclass(cls, c)), None)
    retry_after = err.get("retry_after")
    if retry_after is None and retry_after_header:
        try:
            retry_after = float(retry_after_header)
        except ValueError:
            retry_after = None
    candidates = err.get("candidates")
    provider = model.split("/", 1)[0] if model and "/" in model else None
    return cls(
        scrub(err["message"], secrets),
        code=etype or None,
        status=status,
        model=model,
        provider=provider,
        request_id=err.get("request_id") or request_id,
        retry_after=float(retry_after) if isinstance(retry_after, (int, float)) else None,
        candidates=[str(c) for c in candidates] if isinstance(candidates, list) else None,
    )


def is_retryable(exc: BaseException) -> bool:
    """True for failures a caller may retry as they are: rate limits, timeouts, upstream 5xx,
    a gateway that died or is restarting. Bad requests and auth failures are not retryable."""
    if isinstance(exc, UpstreamAuthError):
        return False
    return isinstance(
        exc,
        (RateLimitError, UpstreamTimeoutError, UpstreamError, GatewayExitedError, GatewayUnavailableError),
    )


#: What to do about DSPy's error classes (dspy.utils.exceptions) and LiteLLM's (litellm.exceptions),
#: by class name (the nearest in the MRO wins): (what to do, usage error?). The CLI's error line and
#: the typed API's LiteLLM backend both name the fix from here.
_LM_FIXES: dict[str, tuple[str, bool]] = {
    "LMConfigurationError": ("fix the LM's arguments as the message says", True),
    "LMAuthError": ("check the provider's API key (e.g. OPENAI_API_KEY), or use pi's credentials with "
                    "--lm-backend pi", False),
    "AuthenticationError": ("check the provider's API key (e.g. OPENAI_API_KEY), or use pi's credentials with "
                            "--lm-backend pi", False),
    "PermissionDeniedError": ("the provider refused this key for this model; check its plan and access", False),
    "LMBillingError": ("the provider's account needs credit or a plan", False),
    "LMRateLimitError": ("the provider is rate-limiting; retry later", False),
    "RateLimitError": ("the provider is rate-limiting; retry later", False),
    "ContextWindowExceededError": ("shorten the prompt or use a model with a larger context window", False),
    "LMUnsupportedModelError": ("check the model name; `aiipython models` lists pi's", False),
    "NotFoundError": ("check the model name; `aiipython models` lists pi's", False),
    "LMInvalidRequestError": ("check the model name and options", False),
    "BadRequestError": ("check the model name and options", False),
    "LMTimeoutError": ("the provider did not answer in time; retry, or raise the timeout", False),
    "Timeout": ("the provider did not answer in time; retry, or raise the timeout", False),
    "LMServerError": ("the provider failed or could not be reached; check the network (HTTPS_PROXY) and the "
                      "provider's status, then retry", False),
    "LMTransportError": ("the provider could not be reached; check the network (HTTPS_PROXY), then retry", False),
    "APIConnectionError": ("the provider could not be reached; check the network (HTTPS_PROXY), then retry",
                           False),
    "InternalServerError": ("the provider failed or could not be reached; check the network (HTTPS_PROXY) and the "
                            "provider's status, then retry", False),
    "AdapterParseError": ("the model's answer did not follow DSPy's output format; retry, or use a stronger "
                          "model", False),
}


def lm_error_fix(exc: BaseException) -> tuple[str, bool] | None:
    """(what to do, is it a usage error?) for a DSPy or LiteLLM exception, by the nearest class in
    its MRO that :data:`_LM_FIXES` names; None for any other."""
    return next((_LM_FIXES[c.__name__] for c in type(exc).__mro__ if c.__name__ in _LM_FIXES), None)
