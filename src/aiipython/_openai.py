"""The official ``openai`` SDK bound to this process's gateway (docs/openai.md "From Python").

``openai_client()`` / ``async_openai_client()`` return an ``openai.OpenAI`` / ``openai.AsyncOpenAI``
whose base URL is the gateway's ``/v1`` and whose API key is the gateway's client token (never
the admin token). Each request follows the process's gateway (:func:`aiipython.get_gateway`): one
that died is restarted and the request goes to the new one, and a call to the embedded local
model (``local/...``) first starts its server when it is offered and not running, as
:class:`aiipython.PiGatewayLM` does. ``openai`` is an optional extra (``aiipython[openai]``); it
is imported only here, on first use.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from ._errors import ConfigurationError
from ._model_names import LOCAL_MODEL

if TYPE_CHECKING:
    import httpx
    import openai

    from ._gateway import Gateway

__all__ = ["openai_base_url", "openai_client", "async_openai_client"]

_MISSING = ("aiipython.{name}() needs the openai package: pip install 'aiipython[openai]' "
            "(or pip install openai)")


def openai_base_url() -> str:
    """The OpenAI-compatible base URL of this process's gateway: ``http://127.0.0.1:<port>/v1``
    (starts the gateway when none runs; with ``AIIPYTHON_GATEWAY_URL`` set, that gateway's ``/v1``).

    The URL changes when the gateway is restarted (after it died); a client from
    :func:`openai_client` follows it, a URL you copied does not.

    Raises:
        The errors of :func:`aiipython.get_gateway` (``NodeNotFoundError``,
        ``GatewayStartError``, ``ConfigurationError``, ...).
    """
    from ._gateway import get_gateway

    return f"{get_gateway().url}/v1"


def _import_openai(name: str) -> Any:
    try:
        import openai
    except ImportError as exc:
        raise ConfigurationError(_MISSING.format(name=name)) from exc
    return openai


def _model_in(request: httpx.Request) -> str | None:
    """The ``model`` of a JSON request body, or None (no body, not JSON, no string ``model``)."""
    if request.method != "POST" or not request.content:
        return None
    try:
        body = json.loads(request.content)
    except ValueError:
        return None
    model = body.get("model") if isinstance(body, dict) else None
    return model if isinstance(model, str) else None


def _prepare(request: httpx.Request) -> None:
    """Point ``request`` at the process's gateway as it is now (restarted if it died, the local
    model's server started if the request needs it) with its client token."""
    import httpx

    from ._gateway import get_gateway

    gateway: Gateway = get_gateway()
    if gateway.needs_local_start(LOCAL_MODEL):  # offered, not running: does this call need it?
        model = _model_in(request)
        if model is not None:
            gateway.ensure_model(model)
    base = httpx.URL(gateway.url)
    if (request.url.scheme, request.url.host, request.url.port) != (base.scheme, base.host, base.port):
        request.url = request.url.copy_with(scheme=base.scheme, host=base.host, port=base.port)
    request.headers["authorization"] = f"Bearer {gateway.token}"


def openai_client(**kwargs: Any) -> openai.OpenAI:
    """An ``openai.OpenAI`` client for this process's gateway (starting it when none runs).

    ``base_url`` is the gateway's ``/v1``, ``api_key`` its client token (model calls only); the
    client follows the process's gateway across restarts and starts the embedded local model on
    the first ``local/...`` call. Models are pi's ``provider/id`` names (``client.models.list()``);
    answers and errors are OpenAI's (docs/openai.md): an upstream 429 is ``openai.RateLimitError``,
    an upstream failure ``openai.InternalServerError`` (502/504), a refused parameter
    ``openai.BadRequestError`` naming it in ``.param``.

    Args:
        **kwargs: passed to ``openai.OpenAI`` (``timeout``, ``max_retries``, ``default_headers``,
            ...); ``base_url``, ``api_key`` and ``http_client`` are set here and may not be given.

    Returns:
        A new ``openai.OpenAI``; close it (``with`` or ``.close()``) when done.

    Raises:
        ConfigurationError: the ``openai`` package is not installed, or ``base_url``, ``api_key``
            or ``http_client`` was given.
        The errors of :func:`aiipython.get_gateway` when the gateway cannot start. A local model
        that cannot start on a later call surfaces as ``openai.APIConnectionError`` whose
        ``__cause__`` is :class:`aiipython.LocalModelError`.
    """
    sdk = _import_openai("openai_client")
    _check_kwargs(kwargs)
    base_url = openai_base_url()
    from ._gateway import get_gateway

    http_client = sdk.DefaultHttpxClient(event_hooks={"request": [_prepare]})
    client: openai.OpenAI = sdk.OpenAI(base_url=base_url, api_key=get_gateway().token,
                                          http_client=http_client, **kwargs)
    return client


def async_openai_client(**kwargs: Any) -> openai.AsyncOpenAI:
    """An ``openai.AsyncOpenAI`` client for this process's gateway; as :func:`openai_client`.

    The gateway is started (when none runs) by this call, not in the event loop; a later restart
    or local-model start runs in a worker thread (``asyncio.to_thread``), never blocking the loop.

    Returns:
        A new ``openai.AsyncOpenAI``; close it (``async with`` or ``await .close()``) when done.

    Raises:
        As :func:`openai_client`.
    """
    sdk = _import_openai("async_openai_client")
    _check_kwargs(kwargs)
    base_url = openai_base_url()
    from ._gateway import get_gateway

    async def prepare(request: httpx.Request) -> None:
        await asyncio.to_thread(_prepare, request)

    http_client = sdk.DefaultAsyncHttpxClient(event_hooks={"request": [prepare]})
    client: openai.AsyncOpenAI = sdk.AsyncOpenAI(base_url=base_url, api_key=get_gateway().token,
                                                    http_client=http_client, **kwargs)
    return client


def _check_kwargs(kwargs: dict[str, Any]) -> None:
    taken = sorted({"base_url", "api_key", "http_client"} & set(kwargs))
    if taken:
        raise ConfigurationError(
            f"openai_client() sets {', '.join(taken)} itself (the process's gateway and its client token); "
            "for another endpoint build openai.OpenAI(...) directly"
        )
