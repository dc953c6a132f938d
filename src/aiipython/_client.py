"""``PiGatewayClient``: the HTTP client of the Pi gateway (docs/protocol.md), sync and async.

The sync POSTs (``complete``, ``stream``, the admin POSTs) to a gateway on loopback go over
the lean pooled sockets of ``_lean_http`` (http.client's parser; about 0.2 ms less client CPU per
call than httpx); everything else uses one ``httpx.Client`` (keep-alive, thread-safe) shared by
every thread, and one ``httpx.AsyncClient`` per running event loop. One attempt per call: retries
are the caller's (DSPy retries rate limits), with one exception: a call that provably never
reached the gateway (no connection, or a connection reset with our request unread, before any
response byte) is sent once more, to a fresh gateway when ours died (:func:`not_delivered`). A
call that may have reached a provider is never sent twice.
Error envelopes and transport failures become the typed exceptions of ``aiipython._errors``, all
translated here and nowhere else. SSE is parsed on LF only: ``httpx.iter_lines`` would also split
JSON text on U+2028.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import socket
import threading
import weakref
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from ._errors import (
    GatewayClosedError,
    GatewayExitedError,
    GatewayProtocolError,
    PermissionDeniedError,
    UpstreamTimeoutError,
    error_from_envelope,
)
from ._lean_http import LeanPool, LeanResponse
from ._resend import NotDelivered, not_delivered
from ._settings import load_settings
from ._transport import coalescing_async_transport, coalescing_transport

if TYPE_CHECKING:
    from ._gateway import Gateway

__all__ = ["PiGatewayClient", "StreamEvent", "get_client", "openai_usage"]

#: Extra seconds the HTTP read timeout allows beyond the gateway's own upstream timeout, so the
#: gateway's 504 (with its message) arrives before our client gives up.
_TIMEOUT_MARGIN = 10.0
_LIMITS = httpx.Limits(max_connections=256, max_keepalive_connections=64)
#: h11 sends a request's headers and body in two writes; without TCP_NODELAY the body can wait
#: on Nagle's algorithm (measured: about 0.2 ms off the first streamed token on loopback). The
#: transports (_transport.py) also join those writes, so the gateway wakes up once per request.
_SOCKET_OPTIONS = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One SSE frame of ``/lm/stream``: ``type`` is pi's event type, ``data`` its JSON payload."""

    type: str
    data: dict[str, Any]

    @property
    def delta(self) -> str | None:
        """The text of a ``text_delta`` / ``thinking_delta`` / ``toolcall_delta`` frame."""
        value = self.data.get("delta")
        return value if isinstance(value, str) else None

    @property
    def content_index(self) -> int | None:
        value = self.data.get("contentIndex")
        return value if isinstance(value, int) else None

    @property
    def message(self) -> dict[str, Any] | None:
        """pi's complete ``AssistantMessage`` (on ``done``; the partial one on ``error``)."""
        value = self.data.get("message")
        return value if isinstance(value, dict) else None


class _SSEParser:
    """Incremental Server-Sent Events parser (LF line ends; CR before LF tolerated)."""

    def __init__(self) -> None:
        self._buffer = b""
        self._event = "message"
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[StreamEvent]:
        self._buffer += chunk
        events: list[StreamEvent] = []
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                return events
            line, self._buffer = self._buffer[:end].rstrip(b"\r"), self._buffer[end + 1 :]
            if not line:
                if self._data:
                    events.append(self._dispatch())
                continue
            if line.startswith(b":"):
                continue
            field, _, value = line.partition(b":")
            value = value[1:] if value.startswith(b" ") else value
            if field == b"event":
                self._event = value.decode("utf-8")
            elif field == b"data":
                self._data.append(value)

    def _dispatch(self) -> StreamEvent:
        raw = b"\n".join(self._data)
        event, self._event, self._data = self._event, "message", []
        try:
            data = json.loads(raw)
        except ValueError:
            raise GatewayProtocolError(f"the gateway sent an SSE frame {event!r} whose data is not JSON") from None
        if not isinstance(data, dict):
            raise GatewayProtocolError(f"the gateway sent an SSE frame {event!r} whose data is not an object")
        return StreamEvent(event, data)


def _path(response: httpx.Response | LeanResponse) -> str:
    return response.path if isinstance(response, LeanResponse) else response.request.url.path


def openai_usage(usage: Any) -> dict[str, Any]:
    """pi's ``usage`` → OpenAI-shaped token counts and dollars (docs/protocol.md "POST /lm/complete").

    pi's ``input`` excludes cached tokens, so ``prompt_tokens = input + cacheRead + cacheWrite``,
    ``completion_tokens = output``, ``total_tokens`` their sum; ``cost_usd`` is pi's ``cost.total``,
    None when the cost says it is unknown (``known: false``, :class:`aiipython.Cost`).
    """
    usage = usage if isinstance(usage, dict) else {}
    cache_read = int(usage.get("cacheRead") or 0)
    cache_write = int(usage.get("cacheWrite") or 0)
    prompt = int(usage.get("input") or 0) + cache_read + cache_write
    completion = int(usage.get("output") or 0)
    cost = usage.get("cost") if isinstance(usage.get("cost"), dict) else {}
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "cache_read_tokens": cache_read, "cache_write_tokens": cache_write,
            "cost_usd": None if cost.get("known") is False else float(cost.get("total") or 0.0)}


async def _loop_guard(client: httpx.AsyncClient) -> AsyncIterator[None]:
    """Suspended once per event loop; ``asyncio.run`` (and any loop's ``shutdown_asyncgens``)
    finalises it on that loop before closing it, which closes the loop's connection pool there,
    where its sockets live. Without it a finished loop would leave unclosed sockets behind."""
    try:
        yield
    finally:
        await client.aclose()


def _body(model: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
          options: dict[str, Any] | None) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": messages}
    if tools:
        body["tools"] = tools
    if options:
        body["options"] = options
    return body


class PiGatewayClient:
    """Client of one Pi gateway; by default the process's own (:func:`aiipython.get_gateway`)."""

    def __init__(
        self,
        *,
        url: str | None = None,
        token: str | None = None,
        gateway: Gateway | None = None,
        timeout: float | None = None,
    ) -> None:
        """
        Args:
            url, token: a running gateway to talk to (both or neither).
            gateway: a :class:`~aiipython.Gateway` to talk to (e.g. from ``start_gateway()``).
            timeout: seconds a call may take; default ``AIIPYTHON_REQUEST_TIMEOUT`` + 10 s margin.
            With none of these, every call uses ``get_gateway()``, which starts the gateway on
            first use and restarts it if it died.

        Raises:
            ValueError: ``url`` without ``token`` or the other way round, or with ``gateway``.
        """
        if (url is None) != (token is None):
            raise ValueError("give both url and token (of a running gateway), or neither")
        if url is not None and gateway is not None:
            raise ValueError("give either url/token or gateway, not both")
        self._url = url.rstrip("/") if url else None
        self._token = token
        self._gateway = gateway
        self._timeout = timeout
        self._default_timeout: httpx.Timeout | None = None
        self._lock = threading.Lock()
        self._http: httpx.Client | None = None
        self._lean = LeanPool()  # the sync POSTs to a gateway on loopback (_lean_http.py)
        self._async: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[httpx.AsyncClient, AsyncIterator[None]]
        ] = weakref.WeakKeyDictionary()
        self._closed = False

    # -- plumbing ------------------------------------------------------------------------------

    def _target(self) -> tuple[str, str, Gateway | None]:
        if self._closed:
            raise GatewayClosedError("this PiGatewayClient was closed; create a new one")
        if self._url is not None:
            assert self._token is not None
            return self._url, self._token, None
        if self._gateway is not None:
            if not self._gateway.alive():
                raise GatewayExitedError(f"the gateway {self._gateway!r} is not running")
            return self._gateway.url, self._gateway.token, self._gateway
        from ._gateway import get_gateway

        gateway = get_gateway()
        return gateway.url, gateway.token, gateway

    def _timeouts(self, options: dict[str, Any] | None = None) -> httpx.Timeout:
        if options and isinstance(options.get("timeout_ms"), (int, float)):
            return httpx.Timeout(options["timeout_ms"] / 1000.0 + _TIMEOUT_MARGIN, connect=10.0)
        if self._default_timeout is None:  # AIIPYTHON_REQUEST_TIMEOUT, read once per client
            read = self._timeout if self._timeout is not None else load_settings().request_timeout + _TIMEOUT_MARGIN
            self._default_timeout = httpx.Timeout(read, connect=10.0)
        return self._default_timeout

    def _sync(self) -> httpx.Client:
        http = self._http
        if http is None:
            with self._lock:
                if self._http is None:
                    self._http = httpx.Client(
                        transport=coalescing_transport(_LIMITS, _SOCKET_OPTIONS),
                        timeout=self._timeouts(),
                    )
                http = self._http
        return http

    async def _asyncc(self) -> httpx.AsyncClient:
        """This event loop's client, closed on that loop when it shuts down (see ``_loop_guard``)."""
        loop = asyncio.get_running_loop()
        entry = self._async.get(loop)
        if entry is None:
            for dead in [other for other in self._async if other.is_closed()]:
                del self._async[dead]  # already closed by their guards
            client = httpx.AsyncClient(
                transport=coalescing_async_transport(_LIMITS, _SOCKET_OPTIONS),
                timeout=self._timeouts(),
            )
            guard = _loop_guard(client)
            await guard.__anext__()  # registered with the loop: finalised by shutdown_asyncgens()
            entry = self._async[loop] = (client, guard)
        return entry[0]

    @contextmanager
    def _translate(self, gateway: Gateway | None, timeout: httpx.Timeout, *, resend: bool = False) -> Iterator[None]:
        """httpx failures -> our errors. ``resend`` (first try, before any response byte): a
        provably undelivered call raises ``NotDelivered`` instead (the caller sends it again)."""
        try:
            yield
        except httpx.TimeoutException as exc:
            raise UpstreamTimeoutError(
                f"the gateway did not answer within {timeout.read:g} s; raise the timeout "
                "(options.timeout_ms or AIIPYTHON_REQUEST_TIMEOUT) or check the provider"
            ) from exc
        except httpx.TransportError as exc:
            external = gateway is not None and gateway.external
            pid = f" (pid {gateway.pid})" if gateway is not None and gateway.pid is not None else ""
            where = f"the gateway at {gateway.url}{pid}" if gateway else "the gateway"
            undelivered = not_delivered(exc)
            dead = gateway is not None and not gateway.alive()
            detail = "exited" if dead else f"could not be reached ({type(exc).__name__})"
            tail = gateway.stderr_tail(10) if dead and gateway is not None else ""
            sent = ("it never reached the gateway" if undelivered
                    else "it may have reached the provider, so it was not sent again")
            # aiipython restarts only a gateway it spawned; an external one (AIIPYTHON_GATEWAY_URL) is the user's
            after = ("check that it is running (`aiipython gateway status`), or unset AIIPYTHON_GATEWAY_URL to let "
                     "aiipython start its own" if external else "the next call starts a new one")
            error = GatewayExitedError(
                f"{where} {detail} during the call ({sent}); {after}."
                + (f"\n--- gateway stderr ---\n{tail}" if tail else "")
            )
            if resend and undelivered:
                raise NotDelivered(error, refused=isinstance(exc, httpx.ConnectError)) from exc
            raise error from exc

    @staticmethod
    def _settle(gateway: Gateway | None, failure: NotDelivered) -> None:
        """Before sending an undelivered call again: let a dying gateway of ours finish dying, so
        the next ``_target()`` starts a fresh one instead of picking the corpse. Refused means
        nothing listens any more (it is going: wait up to 5 s); a reset may come from a running
        gateway too (wait 1 s at most)."""
        if gateway is not None and not gateway.external:
            gateway.wait(5.0 if failure.refused else 1.0)

    @staticmethod
    def _raise_for(response: httpx.Response | LeanResponse, body: bytes, token: str, model: str | None, *,
                   secrets: tuple[str, ...] = (), provider: str | None = None) -> None:
        try:
            decoded = json.loads(body) if body else None
        except ValueError:
            decoded = None
        exc = error_from_envelope(
            response.status_code,
            decoded,
            model=model,
            request_id=response.headers.get("x-request-id"),
            retry_after_header=response.headers.get("retry-after"),
            secrets=(token, *secrets),
        )
        if provider is not None:
            exc.provider = provider
        raise exc

    @classmethod
    def _decode(cls, response: httpx.Response | LeanResponse, token: str, model: str | None = None, *,
                secrets: tuple[str, ...] = (), provider: str | None = None) -> dict[str, Any]:
        if response.status_code != 200:
            cls._raise_for(response, response.content, token, model, secrets=secrets, provider=provider)
        try:
            data = response.json()
        except ValueError:
            raise GatewayProtocolError(f"the gateway answered {_path(response)} with non-JSON") from None
        if not isinstance(data, dict):
            raise GatewayProtocolError(f"the gateway answered {_path(response)} with a non-object")
        return data

    @staticmethod
    def _end_check(seen_end: bool, gateway: Gateway | None) -> None:
        if not seen_end:
            if gateway is not None and not gateway.alive():
                raise GatewayExitedError("the gateway exited in the middle of a stream; the next call starts a new one")
            raise GatewayProtocolError("the gateway's stream ended without a 'done' or 'error' frame")

    @staticmethod
    def _check_event(event: StreamEvent, token: str, model: str) -> bool:
        """True when ``event`` ends the stream; raises on an ``error`` frame."""
        if event.type == "error":
            raise error_from_envelope(None, event.data, model=model, secrets=(token,))
        return event.type == "done"

    def _prepare(
        self, model: str, options: dict[str, Any] | None
    ) -> tuple[str, str, Gateway | None, httpx.Timeout]:
        """What a model call needs: where to send it, the token, the gateway (after starting the
        local model if ``model`` needs it) and the timeout."""
        url, token, gateway = self._target()
        if gateway is not None:
            gateway.ensure_model(model)
        return url, token, gateway, self._timeouts(options)

    async def _aprepare(
        self, model: str, options: dict[str, Any] | None
    ) -> tuple[str, str, Gateway | None, httpx.Timeout]:
        """:meth:`_prepare` for the async API: process starts run off the event loop."""
        url, token, gateway = await asyncio.to_thread(self._target) if self._needs_start() else self._target()
        if gateway is not None and gateway.needs_local_start(model):
            await asyncio.to_thread(gateway.ensure_model, model)
        return url, token, gateway, self._timeouts(options)

    # -- sync API ------------------------------------------------------------------------------

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None, *,
                 admin: bool = False, secrets: tuple[str, ...] = (), provider: str | None = None) -> dict[str, Any]:
        """A non-model call (``GET``, the idempotent ``PUT``/``DELETE`` routes, a prompt's answer),
        sent once more when it provably never reached the gateway. ``admin``: with the admin token
        (:meth:`_admin_token`); ``secrets``: strings scrubbed from an error's message; ``provider``
        set on the error."""
        for first in (True, False):
            url, token, gateway = self._target()
            bearer = self._admin_token(gateway, token) if admin else token
            timeout = self._timeouts()
            try:
                with self._translate(gateway, timeout, resend=first):
                    response = self._sync().request(method, url + path, json=body, timeout=timeout,
                                                    headers={"authorization": f"Bearer {bearer}"})
            except NotDelivered as failure:
                self._settle(gateway, failure)
                continue
            return self._decode(response, bearer, secrets=secrets, provider=provider)
        raise AssertionError("unreachable")

    @staticmethod
    def _admin_token(gateway: Gateway | None, token: str) -> str:
        """The token for admin-only routes: the admin token of a gateway this process spawned, or
        the token this client was given (``url``/``token``; the admin token from running.json)."""
        if gateway is None:
            return token
        if gateway.admin_token is None:
            raise PermissionDeniedError(
                f"the gateway at {gateway.url} was not started by this process, so its admin token is unknown; "
                "admin-only routes (PUT /providers, logins) need PiGatewayClient(url=..., token=<its admin token>); "
                "or unset AIIPYTHON_GATEWAY_URL so this process starts its own gateway")
        return gateway.admin_token

    def _get(self, path: str) -> dict[str, Any]:
        return self._request("GET", path)

    def health(self) -> dict[str, Any]:
        """``GET /health``: ``{"ok", "pid", "uptime_s", "version", "pi_version", "node_version"}``."""
        return self._get("/health")

    def list_models(self) -> dict[str, Any]:
        """``GET /models``: ``{"models": [...], "default_model": {"provider", "id", "source"} | None,
        "default_model_warning", "settings_default_model", "models_json_error", "providers_error"}``.

        Each model: provider, id, name, api, reasoning, thinking_levels, input, context_window
        (tokens), max_tokens, cost ($ per 1M tokens), available (pi has credentials).
        """
        return self._get("/models")

    def default_model(self) -> dict[str, Any]:
        """``GET /models/default``: ``{"default_model": {"provider", "id", "source"} | None,
        "default_model_warning": str | None, "settings_default_model": {"provider", "id"} | None}``
        (docs/protocol.md): the model pi starts with, by pi's own rule, and settings.json's pair."""
        return self._get("/models/default")

    def set_default_model(self, model: str) -> dict[str, Any]:
        """``PUT /models/default`` (admin-only): make ``model`` (``provider/id``) pi's default, written
        to pi's ``settings.json`` by pi's own SettingsManager.

        Returns:
            ``{"settings_default_model": {"provider", "id"}, "default_model", "default_model_warning"}``.

        Raises:
            ModelNotFoundError: pi does not know the model (``candidates``: close matches).
            AmbiguousModelError: a bare id several providers have.
            PermissionDeniedError: no admin token (see :meth:`register_providers`).
        """
        return self._request("PUT", "/models/default", {"model": model}, admin=True)

    def auth_status(self) -> dict[str, Any]:
        """``GET /auth/status``: ``{"providers": [{"provider", "configured", "source", ...}]}``; no secrets."""
        return self._get("/auth/status")

    def register_providers(self, providers: dict[str, Any]) -> dict[str, Any]:
        """``PUT /providers`` (admin-only): register or replace run-time providers, models.json
        blocks by provider name (docs/protocol.md "PUT /providers"); all or nothing.

        Returns:
            The gateway's reply (``{"ok": true, "providers": [...]}``).

        Raises:
            PermissionDeniedError: no admin token (a gateway this process did not start, or a
                client token given as ``token``).
            InvalidRequestError: a block the gateway refuses (the message names the field).
            GatewayExitedError: the gateway could not be reached.
        """
        return self._request("PUT", "/providers", {"providers": providers}, admin=True)

    def complete(
        self,
        model: str,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        options: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """``POST /lm/complete``: one chat completion through pi.

        Args:
            model: pi's ``provider/id`` (or a bare id unique among providers).
            messages: OpenAI chat messages (system, developer, user, assistant, tool).
            tools: OpenAI function tools.
            options: temperature, max_tokens, reasoning, tool_choice, stop, session_id, timeout_ms.

        Returns:
            ``{"message": <pi AssistantMessage>, "model": {"provider", "id"}, "duration_ms"}``;
            ``message.usage`` has token counts and ``cost`` in dollars.

        Raises:
            GatewayError subclasses per docs/protocol.md "Errors" (never a failure as a result).
        """
        with self._post("/lm/complete", model, _body(model, messages, tools, options), options) as (response, token, _):
            response.read()
        return self._decode(response, token, model)

    def stream(
        self,
        model: str,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        options: dict[str, Any] | None = None,
    ) -> Iterator[StreamEvent]:
        """``POST /lm/stream``: yield each SSE frame as a :class:`StreamEvent`, ending with ``done``.

        Arguments as :meth:`complete`. Closing the iterator early closes the connection, which
        aborts the upstream call.

        Raises:
            GatewayError subclasses: before the first frame for an HTTP error; from the ``error``
            frame's envelope mid-stream; ``GatewayExitedError``/``GatewayProtocolError`` when the
            stream ends without ``done``.
        """
        parser, seen_end = _SSEParser(), False
        with self._post("/lm/stream", model, _body(model, messages, tools, options), options) as (response, token, gw):
            if response.status_code != 200:
                self._raise_for(response, response.read(), token, model)
            for chunk in response.iter_raw():
                for event in parser.feed(chunk):
                    seen_end = self._check_event(event, token, model)
                    yield event
                    if seen_end:
                        return
        self._end_check(seen_end, gw)

    @contextmanager
    def _post(self, path: str, model: str | None, body: dict[str, Any], options: dict[str, Any] | None, *,
              admin_timeout: httpx.Timeout | None = None
              ) -> Iterator[tuple[httpx.Response | LeanResponse, str, Gateway | None]]:
        """POST a model call and yield ``(response, token, gateway)`` once its headers arrived
        (streamed; closed on exit). A call that provably never reached the gateway is sent once
        more (``_resend``); nothing is sent again after the response started. ``admin_timeout``:
        an admin route (no model) with the admin token and that timeout. A plain-``http://``
        gateway on loopback is reached over the lean pooled sockets of ``_lean_http`` (the same httpx errors)."""
        for first in (True, False):
            if admin_timeout is not None:
                url, token, gateway = self._target()
                token, timeout = self._admin_token(gateway, token), admin_timeout
            else:
                assert model is not None
                url, token, gateway, timeout = self._prepare(model, options)
            response: httpx.Response | LeanResponse
            try:
                with self._translate(gateway, timeout, resend=first):
                    if LeanPool.usable(url):
                        payload = json.dumps(body, ensure_ascii=False, separators=(",", ":"),
                                             allow_nan=False).encode("utf-8")  # as httpx's json=
                        response = self._lean.post(url, path, payload, token, connect_timeout=timeout.connect or 10.0,
                                                   read_timeout=timeout.read)
                    else:
                        request = self._sync().build_request("POST", url + path, json=body, timeout=timeout,
                                                             headers={"authorization": f"Bearer {token}"})
                        response = self._sync().send(request, stream=True)
            except NotDelivered as failure:
                self._settle(gateway, failure)
                continue
            try:
                with self._translate(gateway, timeout):
                    yield response, token, gateway
            finally:
                response.close()
            return

    # -- logging in (docs/protocol.md "Logging in"; admin token; aiipython._login is the API) ----

    def login_providers(self) -> dict[str, Any]:
        """``GET /auth/providers`` (admin-only): every provider pi can log in to, as pi lists them.

        Returns:
            ``{"providers": [{"provider", "name", "configured", "source", "methods": [{"type":
            "oauth", "name", "login_label", "subscription", "flows"} | {"type": "api_key", "name",
            "env_vars"}]}]}``; never a secret.

        Raises:
            PermissionDeniedError: no admin token (see :meth:`register_providers`).
        """
        return self._request("GET", "/auth/providers", admin=True)

    def login_events(self, provider: str, *, method: str | None = None,
                     timeout_ms: int | None = None) -> Iterator[StreamEvent]:
        """``POST /auth/login`` (admin-only): start pi's login for ``provider`` and yield its flow
        events, from ``start`` (``{"id", "provider", "method", "timeout_ms"}``: the flow id for
        :meth:`login_input` / :meth:`cancel_login`) to ``done`` (``{"provider", "method",
        "configured", "source", "warning"?}``). Between them: ``auth_url`` (``url``,
        ``instructions``?), ``device_code`` (``userCode``, ``verificationUri``,
        ``intervalSeconds``?, ``expiresInSeconds``?), ``prompt`` (``id``, ``type`` text / secret /
        select / manual_code, ``message``, ``placeholder``?, ``options``?), ``prompt_closed``
        (``id``), ``progress`` / ``info`` (``message``). No frame holds a secret.

        Args:
            provider: pi's provider id (``GET /auth/providers``).
            method: ``"oauth"`` or ``"api_key"``; default pi's (OAuth where the provider has it).
            timeout_ms: end the flow sooner than the gateway's bound (10 min).

        Closing the iterator early closes the stream, which makes the gateway cancel the flow;
        :meth:`cancel_login` does it and also waits until pi's callback server is closed.

        Raises:
            ProviderNotFoundError: pi has no such provider (``candidates``: those with a login).
            InvalidRequestError: the provider has no such login method.
            LoginError: another login to this provider is running (``code`` ``conflict``), or
                pi's flow failed (an ``error`` frame, ``login_failed``).
            LoginCancelledError, LoginTimeoutError: the flow was cancelled / timed out.
            GatewayOverloadedError: the gateway already holds its most flows (4).
            PermissionDeniedError: no admin token.
        """
        body: dict[str, Any] = {"provider": provider}
        if method is not None:
            body["method"] = method
        if timeout_ms is not None:
            body["timeout_ms"] = timeout_ms
        seconds = max(600.0, (timeout_ms or 0) / 1000.0) + _TIMEOUT_MARGIN  # the gateway ends it first
        parser, seen_end = _SSEParser(), False
        timeout = httpx.Timeout(seconds, connect=10.0)
        with self._post("/auth/login", None, body, None, admin_timeout=timeout) as (response, token, gateway):
            if response.status_code != 200:
                self._raise_for(response, response.read(), token, None, provider=provider)
            for chunk in response.iter_raw():
                for event in parser.feed(chunk):
                    if event.type == "error":
                        exc = error_from_envelope(None, event.data, secrets=(token,))
                        exc.provider = provider
                        raise exc
                    seen_end = event.type == "done"
                    yield event
                    if seen_end:
                        return
        self._end_check(seen_end, gateway)

    def login_input(self, flow_id: str, value: str, *, prompt_id: int | None = None) -> dict[str, Any]:
        """``POST /auth/login/{flow_id}/input`` (admin-only): answer the flow's pending prompt
        (``prompt_id``: which one; needed only when several are pending). ``value`` is a secret
        (a pasted code, a key) and is kept out of every error message.

        Returns:
            ``{"id": flow_id, "prompt_id": n}``.

        Raises:
            InvalidRequestError: no such pending prompt (it was answered or closed), or a value a
                ``select`` prompt does not offer.
            GatewayProtocolError: the flow is not running (404 ``not_found``).
        """
        body: dict[str, Any] = {"value": value}
        if prompt_id is not None:
            body["prompt_id"] = prompt_id
        return self._request("POST", f"/auth/login/{flow_id}/input", body, admin=True, secrets=(value,))

    def cancel_login(self, flow_id: str) -> dict[str, Any]:
        """``DELETE /auth/login/{flow_id}`` (admin-only): cancel a running flow. Answers once pi's
        flow has unwound, so its callback port is free again. Returns ``{"id", "cancelled": true}``.

        Raises:
            GatewayProtocolError: the flow is not running (404 ``not_found``: it ended already).
        """
        return self._request("DELETE", f"/auth/login/{flow_id}", admin=True)

    def store_api_key(self, provider: str, key: str) -> dict[str, Any]:
        """``PUT /auth/{provider}/api-key`` (admin-only): store an API key through pi's API key
        login, in pi's ``auth.json`` (mode 0600, under pi's lock). The key never appears in an
        error message (the gateway redacts it; this client scrubs it too).

        Returns:
            ``{"provider", "method": "api_key", "configured", "source": "api_key"}``.

        Raises:
            ProviderNotFoundError: pi has no such provider.
            InvalidRequestError: the provider has no API key login, or the key holds whitespace.
            LoginError: pi could not store it (``login_failed``, e.g. auth.json does not parse).
        """
        return self._request("PUT", f"/auth/{provider}/api-key", {"key": key}, admin=True,
                             secrets=(key,), provider=provider)

    def logout(self, provider: str) -> dict[str, Any]:
        """``DELETE /auth/{provider}`` (admin-only): remove pi's stored credential for
        ``provider`` (env vars and models.json keys stay: ``configured`` may still be true).

        Returns:
            ``{"provider", "configured", "source", "removed"}`` (``removed``: whether one was stored).

        Raises:
            ProviderNotFoundError: pi has no such provider.
            LoginError: pi could not write auth.json (``login_failed``).
        """
        return self._request("DELETE", f"/auth/{provider}", admin=True, provider=provider)

    # -- async API -----------------------------------------------------------------------------

    async def _aget(self, path: str) -> dict[str, Any]:
        for first in (True, False):
            url, token, gateway = await asyncio.to_thread(self._target) if self._needs_start() else self._target()
            timeout = self._timeouts()
            try:
                with self._translate(gateway, timeout, resend=first):
                    response = await (await self._asyncc()).get(
                        url + path, headers={"authorization": f"Bearer {token}"}, timeout=timeout)
            except NotDelivered as failure:
                await asyncio.to_thread(self._settle, gateway, failure)
                continue
            return self._decode(response, token)
        raise AssertionError("unreachable")

    def _needs_start(self) -> bool:
        """True when the first call must start the gateway (blocking work: do it off the loop)."""
        if self._url is not None or self._gateway is not None:
            return False
        from . import _gateway

        current = _gateway._current
        return current is None or not current.alive()

    async def ahealth(self) -> dict[str, Any]:
        """Async :meth:`health`."""
        return await self._aget("/health")

    async def alist_models(self) -> dict[str, Any]:
        """Async :meth:`list_models`."""
        return await self._aget("/models")

    async def aauth_status(self) -> dict[str, Any]:
        """Async :meth:`auth_status`."""
        return await self._aget("/auth/status")

    async def acomplete(
        self,
        model: str,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        options: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Async :meth:`complete` (same arguments, result and errors)."""
        body = _body(model, messages, tools, options)
        async with self._apost("/lm/complete", model, body, options) as (response, token, _):
            await response.aread()
        return self._decode(response, token, model)

    async def astream(
        self,
        model: str,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        options: dict[str, Any] | None = None,
    ) -> AsyncIterator[StreamEvent]:
        """Async :meth:`stream` (same arguments, frames and errors)."""
        parser, seen_end = _SSEParser(), False
        body = _body(model, messages, tools, options)
        async with self._apost("/lm/stream", model, body, options) as (response, token, gateway):
            if response.status_code != 200:
                self._raise_for(response, await response.aread(), token, model)
            async for chunk in response.aiter_raw():
                for event in parser.feed(chunk):
                    seen_end = self._check_event(event, token, model)
                    yield event
                    if seen_end:
                        return
        self._end_check(seen_end, gateway)

    @asynccontextmanager
    async def _apost(self, path: str, model: str, body: dict[str, Any],
                     options: dict[str, Any] | None) -> AsyncIterator[tuple[httpx.Response, str, Gateway | None]]:
        """Async :meth:`_post`."""
        for first in (True, False):
            url, token, gateway, timeout = await self._aprepare(model, options)
            client = await self._asyncc()
            try:
                with self._translate(gateway, timeout, resend=first):
                    request = client.build_request("POST", url + path, json=body, timeout=timeout,
                                                   headers={"authorization": f"Bearer {token}"})
                    response = await client.send(request, stream=True)
            except NotDelivered as failure:
                await asyncio.to_thread(self._settle, gateway, failure)
                continue
            try:
                with self._translate(gateway, timeout):
                    yield response, token, gateway
            finally:
                await response.aclose()
            return

    # -- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the HTTP connections (not the gateway). Idempotent."""
        self._closed = True
        with self._lock:
            http, self._http = self._http, None
        if http is not None:
            http.close()
        self._lean.close()
        self._async = weakref.WeakKeyDictionary()

    async def aclose(self) -> None:
        """Close this loop's async connections, then :meth:`close`."""
        try:
            entry = self._async.pop(asyncio.get_running_loop(), None)
        except RuntimeError:
            entry = None
        if entry is not None:
            await entry[0].aclose()
        self.close()

    def __enter__(self) -> PiGatewayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_default: PiGatewayClient | None = None
_default_lock = threading.Lock()


def get_client() -> PiGatewayClient:
    """The process-wide client of the process's gateway (created on first use)."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = PiGatewayClient()
                atexit.register(_default.close)
    return _default

