"""Logging in and out through pi's own auth code: :func:`login`, :func:`logout`, :func:`auth_providers`.

Nothing here implements a login: the gateway runs pi's flows (``@earendil-works/pi-ai``
``dist/auth/oauth/*.js`` for OAuth, each provider's API key login) through pi-coding-agent's
``ModelRuntime.login`` / ``logout``, which write pi's ``auth.json`` (mode 0600) through pi's
credential store under its file lock, so ``pi`` and every pi-based tool see the result
(docs/protocol.md "Logging in"; node_gateway/routes/auth_login.mjs). This module reads the flow's
events (:meth:`PiGatewayClient.login_events`) and answers its prompts, by default on the terminal.

Secrets: keys, pasted codes and tokens are never printed or put in an exception; the gateway
redacts them from every frame and log line, and the client scrubs what it sent from error texts.
"""

from __future__ import annotations

import getpass
import os
import queue
import select
import sys
import threading
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from ._client import PiGatewayClient, StreamEvent, get_client
from ._errors import AiipythonError, ConfigurationError, GatewayProtocolError

__all__ = [
    "AuthPrompt",
    "PromptClosedError",
    "AuthUrl",
    "LoginMethod",
    "LoginProvider",
    "LoginResult",
    "LogoutResult",
    "PromptOption",
    "auth_providers",
    "login",
    "logout",
]

#: How an OAuth flow signs in (docs/protocol.md "GET /auth/providers").
FlowKind = Literal["browser_callback", "pasted_code", "device_code"]
#: pi's prompt types (pi-ai ``AuthPrompt``).
PromptType = Literal["text", "secret", "select", "manual_code"]


def _str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) else None


def _need(data: dict[str, Any], key: str, what: str) -> Any:
    if key not in data:
        raise GatewayProtocolError(f"the gateway's {what} has no {key!r}")
    return data[key]


@dataclass(frozen=True, slots=True)
class LoginMethod:
    """One way to log in to a provider, as pi offers it.

    ``type`` ``"oauth"``: pi's OAuth flow ``name`` (``login_label``: pi's button text, e.g.
    "Sign in with ChatGPT"; ``subscription``: a plan such as Claude Pro/Max rather than API
    billing; ``flows``: how it signs in, ``None`` when the gateway does not know this flow yet).
    ``type`` ``"api_key"``: pi's API key login; ``env_vars`` are the variables pi also reads.
    """

    type: Literal["oauth", "api_key"]
    name: str
    login_label: str | None = None
    subscription: bool = False
    flows: tuple[FlowKind, ...] | None = None
    env_vars: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LoginMethod:
        kind = _need(data, "type", "login method")
        if kind not in ("oauth", "api_key"):
            raise GatewayProtocolError(f"the gateway listed a login method of type {kind!r}")
        flows = data.get("flows")
        return cls(type=kind, name=str(data.get("name") or kind), login_label=_str(data, "login_label"),
                   subscription=bool(data.get("subscription")),
                   flows=tuple(flows) if isinstance(flows, list) else None,
                   env_vars=tuple(str(v) for v in data.get("env_vars") or ()))


@dataclass(frozen=True, slots=True)
class LoginProvider:
    """A provider pi can log in to: ``provider`` (pi's id), ``name``, whether pi has credentials
    (``configured``) and from where (``source``: ``oauth``, ``api_key``, ``env``, ``models_json``,
    ``runtime``, ``fallback``; ``None`` when not configured), and its ``methods``."""

    provider: str
    name: str
    configured: bool
    source: str | None
    methods: tuple[LoginMethod, ...]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LoginProvider:
        provider = str(_need(data, "provider", "provider entry"))
        return cls(provider=provider, name=str(data.get("name") or provider), configured=bool(data.get("configured")),
                   source=_str(data, "source"),
                   methods=tuple(LoginMethod.from_json(m) for m in data.get("methods") or () if isinstance(m, dict)))

    def method(self, kind: Literal["oauth", "api_key"]) -> LoginMethod | None:
        """This provider's method of that type, or ``None``."""
        return next((m for m in self.methods if m.type == kind), None)


@dataclass(frozen=True, slots=True)
class LoginResult:
    """A finished login: pi stored the credential. ``source`` is how pi now sees the provider
    (``oauth`` or ``api_key`` after a login; an env var can still win); ``warning`` when pi saved
    it but could not refresh its own state (it does on the next reload). Never a secret."""

    provider: str
    method: Literal["oauth", "api_key"]
    configured: bool
    source: str | None
    warning: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any], provider: str) -> LoginResult:
        method = data.get("method")
        return cls(provider=str(data.get("provider") or provider),
                   method=method if method in ("oauth", "api_key") else "oauth",
                   configured=bool(data.get("configured")), source=_str(data, "source"),
                   warning=_str(data, "warning"))


@dataclass(frozen=True, slots=True)
class LogoutResult:
    """After :func:`logout`: ``removed`` says whether pi had a stored credential; ``configured``
    / ``source`` how pi sees the provider now (an env var or models.json key still counts)."""

    provider: str
    removed: bool
    configured: bool
    source: str | None


@dataclass(frozen=True, slots=True)
class AuthUrl:
    """Where the user signs in (an ``auth_url`` event, or a ``device_code`` one).

    ``url``: the provider's authorization page (pi's client id, PKCE challenge, redirect and
    state are in it; nothing secret) or, for a device code, the verification page;
    ``user_code``: the code to enter there (device flows only); ``instructions``: pi's hint;
    ``expires_in_seconds``: how long a device code stays valid, when the provider says.
    """

    url: str
    instructions: str | None = None
    user_code: str | None = None
    expires_in_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class PromptOption:
    """One choice of a ``select`` prompt: answer with its ``id``."""

    id: str
    label: str
    description: str | None = None


@dataclass(frozen=True, slots=True)
class AuthPrompt:
    """A question pi's flow asks (a ``prompt`` event): ``type`` ``"select"`` (answer one of
    ``options``' ids, e.g. browser or pasted code), ``"manual_code"`` (paste the code or the
    redirect URL the provider showed), ``"secret"`` (an API key; read it hidden), ``"text"``
    (e.g. a GitHub Enterprise domain; empty for the default). ``id`` numbers the flow's prompts;
    ``closed`` is set once the answer is no longer needed."""

    id: int
    type: PromptType
    message: str
    placeholder: str | None = None
    options: tuple[PromptOption, ...] = ()
    #: Set when pi no longer needs the answer (``prompt_closed``: the browser's callback won, or
    #: the flow ended); a callback may stop waiting then (its answer is ignored).
    closed: threading.Event = field(default_factory=threading.Event, compare=False, repr=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AuthPrompt:
        kind = data.get("type")
        if kind not in ("text", "secret", "select", "manual_code"):
            raise GatewayProtocolError(f"the gateway sent a login prompt of type {kind!r}")
        options = tuple(PromptOption(str(o["id"]), str(o.get("label") or o["id"]), _str(o, "description"))
                        for o in data.get("options") or () if isinstance(o, dict) and "id" in o)
        return cls(id=int(_need(data, "id", "prompt")), type=kind, message=str(data.get("message") or ""),
                   placeholder=_str(data, "placeholder"), options=options)


# -- the default callbacks: the terminal --------------------------------------------------------


def _say(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def open_in_browser(url: str) -> bool:
    """Open ``url`` in the user's browser when one is available (stdlib :mod:`webbrowser`);
    True when it was handed to one. A text-mode browser is not started (it would take over the
    terminal the flow is using) unless ``BROWSER`` names it."""
    try:
        browser = webbrowser.get()
    except webbrowser.Error:
        return False
    if type(browser) is webbrowser.GenericBrowser and not os.environ.get("BROWSER"):
        return False  # lynx, w3m, www-browser...: console browsers run in the foreground
    try:
        return bool(browser.open(url))
    except Exception:  # a browser that fails to start is not the login's failure
        return False


def show_auth_url(auth: AuthUrl, *, open_browser: bool = True) -> None:
    """The default ``on_auth_url``: print where to sign in (and the device code) to stderr, and
    open it in a browser when ``open_browser`` and one is available."""
    if auth.user_code is not None:
        _say(f"To log in, open {auth.url} and enter the code: {auth.user_code}")
        if auth.expires_in_seconds:
            _say(f"(the code is valid for {auth.expires_in_seconds / 60:.0f} min)")
    else:
        _say(f"To log in, open this URL in a browser:\n\n  {auth.url}\n")
        if auth.instructions:
            _say(auth.instructions)
    if open_browser and open_in_browser(auth.url):
        _say("(opened in your browser)")


class PromptClosedError(Exception):
    """Raised by :func:`read_line` when ``stop`` is set first (pi no longer needs the answer)."""


class _Stdin:
    """stdin's lines read straight from its file descriptor, so a thread waiting for one can give
    up when the prompt closes (``select`` with a short period; Windows: a plain blocking read) and
    never sits in ``sys.stdin``'s buffered reader, whose lock a waiting daemon thread would hold at
    interpreter exit (a fatal error). One buffer for every read, so piped answers are not lost."""

    _POLL_S = 0.2

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buffer = b""
        self._eof = False

    def _fill(self, stop: threading.Event | None) -> None:
        fd = sys.stdin.fileno()
        while True:
            if stop is not None and stop.is_set():
                raise PromptClosedError
            if os.name == "nt" or select.select([fd], [], [], self._POLL_S)[0]:
                chunk = os.read(fd, 65536)
                self._eof = not chunk
                self._buffer += chunk
                return

    def read_line(self, stop: threading.Event | None = None) -> str:
        with self._lock:
            while b"\n" not in self._buffer and not self._eof:
                self._fill(stop)
            if not self._buffer:
                raise EOFError("stdin ended")
            line, sep, rest = self._buffer.partition(b"\n")
            self._buffer = rest
            return line.decode("utf-8", "replace").rstrip("\r")

    def read_all(self) -> str:
        with self._lock:
            while not self._eof:
                self._fill(None)
            text, self._buffer = self._buffer, b""
            return text.decode("utf-8", "replace")


_stdin = _Stdin()


def read_line(stop: threading.Event | None = None) -> str:
    """One line of stdin (without its line end), for the login prompts and the CLI.

    Raises:
        EOFError: stdin ended.
        PromptClosedError: ``stop`` was set before a line arrived.
    """
    return _stdin.read_line(stop)


def read_all() -> str:
    """The rest of stdin (e.g. an API key piped to ``aiipython auth login --api-key``)."""
    return _stdin.read_all()


def ask_on_terminal(prompt: AuthPrompt) -> str:
    """The default ``on_prompt``: ask on the terminal (stderr for the question, stdin for the
    answer; ``secret`` prompts read without echo via :func:`getpass.getpass` on a terminal). A
    ``select`` prompt is a numbered list answered by number. Gives up when ``prompt.closed`` is
    set (pi no longer needs the answer). A ``manual_code`` prompt whose stdin ends is left
    unanswered (pi races it against its callback server: the browser can still complete the login).

    Raises:
        EOFError: stdin ended before the answer to any other prompt (the login is then cancelled).
        PromptClosedError: the prompt was closed first (ignored by :func:`login`).
    """
    def ask(text: str) -> str:
        sys.stderr.write(text)
        sys.stderr.flush()
        return read_line(prompt.closed)

    if prompt.type == "select":
        _say(prompt.message)
        for n, option in enumerate(prompt.options, 1):
            _say(f"  {n}. {option.label}" + (f" - {option.description}" if option.description else ""))
        while True:
            answer = ask(f"Choose 1-{len(prompt.options)}: ").strip()
            if answer.isdigit() and 1 <= int(answer) <= len(prompt.options):
                return prompt.options[int(answer) - 1].id
            _say(f"{answer!r} is not one of 1-{len(prompt.options)}")
    hint = f" ({prompt.placeholder})" if prompt.placeholder else ""
    if prompt.type == "secret" and sys.stdin is not None and sys.stdin.isatty():
        return getpass.getpass(f"{prompt.message}{hint}: ")
    try:
        return ask(f"{prompt.message}{hint}: ")
    except EOFError:
        if prompt.type != "manual_code":
            raise
        prompt.closed.wait()  # no paste will come: the browser's callback (or the timeout) ends it
        raise PromptClosedError from None


# -- the API ------------------------------------------------------------------------------------


def auth_providers(*, client: PiGatewayClient | None = None) -> list[LoginProvider]:
    """Every provider pi can log in to, with its login methods and whether it is configured, as
    pi's pinned version lists them (``GET /auth/providers``); never a secret.

    Args:
        client: the gateway client; default the process's (:func:`aiipython.get_client`).

    Raises:
        PermissionDeniedError: the gateway's admin token is unknown (``AIIPYTHON_GATEWAY_URL``
            names a gateway this process did not start; pass ``client`` with its admin token).
        GatewayError: the gateway could not be started or reached.
    """
    data = (client or get_client()).login_providers()
    providers = data.get("providers")
    if not isinstance(providers, list):
        raise GatewayProtocolError("the gateway's GET /auth/providers has no 'providers' list")
    return [LoginProvider.from_json(p) for p in providers if isinstance(p, dict)]


def login(
    provider: str,
    *,
    api_key: str | None = None,
    method: Literal["oauth", "api_key"] | None = None,
    open_browser: bool = True,
    on_prompt: Callable[[AuthPrompt], str] | None = None,
    on_auth_url: Callable[[AuthUrl], None] | None = None,
    on_progress: Callable[[str], None] | None = None,
    timeout: float | None = None,
    client: PiGatewayClient | None = None,
) -> LoginResult:
    """Log in to ``provider`` through pi's own login code and store the credential in pi's
    ``auth.json`` (0600, pi's lock), where ``pi`` and every pi-based tool find it.

    With ``api_key`` the key is stored through pi's API key login (``PUT /auth/{provider}/api-key``);
    otherwise pi's flow runs (``method``, default pi's: OAuth where the provider has it, else its
    API key login, which asks for the key through ``on_prompt``). Blocks until the flow ends.

    Args:
        provider: pi's provider id, e.g. ``"anthropic"``, ``"openai"`` (:func:`auth_providers`).
        api_key: the key to store (never logged; scrubbed from errors).
        method: ``"oauth"`` or ``"api_key"``.
        open_browser: let the default ``on_auth_url`` open the sign-in page in a browser.
        on_prompt: answers pi's questions (:class:`AuthPrompt`) with a string (a ``select``
            prompt: an option's ``id``); called from a worker thread, since the flow may finish
            without the answer (the browser callback wins over a pasted code). Default: ask on the
            terminal (:func:`ask_on_terminal`).
        on_auth_url: told where to sign in (:class:`AuthUrl`: an authorization URL, or a device
            code and its page). Default: print it to stderr and open the browser (:func:`show_auth_url`).
        on_progress: pi's progress and info messages. Default: print them to stderr.
        timeout: seconds before the gateway stops the flow (at most its bound, 10 min).
        client: the gateway client; default the process's (:func:`aiipython.get_client`).

    Returns:
        :class:`LoginResult` (provider, method, configured, source, warning).

    Raises:
        ProviderNotFoundError: pi has no such provider (``candidates`` lists those with a login).
        InvalidRequestError: the provider lacks that method, or the key holds whitespace.
        LoginError: pi's flow failed (e.g. the provider refused the code), or a login to this
            provider is already running in the gateway (``code`` ``"conflict"``).
        LoginTimeoutError: the flow did not finish in time.
        LoginCancelledError: the flow was cancelled elsewhere.
        PermissionDeniedError: no admin token for the gateway (see :func:`auth_providers`).
        KeyboardInterrupt, or whatever a callback raised: after the flow was cancelled in the
            gateway (``DELETE /auth/login/{id}``, which frees pi's callback port).
    """
    client = client or get_client()
    if api_key is not None:
        if method not in (None, "api_key"):
            raise ConfigurationError(f"api_key was given with method={method!r}; an API key is method 'api_key'")
        return LoginResult.from_json(client.store_api_key(provider, api_key), provider)
    timeout_ms = None if timeout is None else max(1, int(timeout * 1000))
    flow = _Flow(client, provider, method, timeout_ms,
                 on_prompt=on_prompt or ask_on_terminal,
                 on_auth_url=on_auth_url or (lambda auth: show_auth_url(auth, open_browser=open_browser)),
                 on_progress=on_progress or _say)
    return flow.run()


def logout(provider: str, *, client: PiGatewayClient | None = None) -> LogoutResult:
    """Remove pi's stored credential for ``provider`` from ``auth.json`` (pi's ``logout``).
    Env vars and models.json keys are not touched, so the provider may stay configured.

    Raises:
        ProviderNotFoundError: pi has no such provider.
        LoginError: pi could not write auth.json.
        PermissionDeniedError: no admin token for the gateway (see :func:`auth_providers`).
    """
    data = (client or get_client()).logout(provider)
    return LogoutResult(provider=str(data.get("provider") or provider), removed=bool(data.get("removed")),
                        configured=bool(data.get("configured")), source=_str(data, "source"))


class _Flow:
    """One login: a reader thread turns the SSE stream into queue items; this thread handles
    them, running each prompt's callback in its own thread (a pasted-code prompt may be closed by
    pi when the browser callback wins). Leaving early for any reason cancels the flow (DELETE)."""

    def __init__(self, client: PiGatewayClient, provider: str, method: str | None, timeout_ms: int | None, *,
                 on_prompt: Callable[[AuthPrompt], str], on_auth_url: Callable[[AuthUrl], None],
                 on_progress: Callable[[str], None]) -> None:
        self.client, self.provider, self.method, self.timeout_ms = client, provider, method, timeout_ms
        self.on_prompt, self.on_auth_url, self.on_progress = on_prompt, on_auth_url, on_progress
        self.items: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.flow_id: str | None = None
        self.pending: dict[int, AuthPrompt] = {}

    def _read(self) -> None:
        try:
            for event in self.client.login_events(self.provider, method=self.method, timeout_ms=self.timeout_ms):
                self.items.put(("event", event))
        except BaseException as exc:  # handed to the waiting thread
            self.items.put(("ended", exc))  # the flow's error frame, or the stream broke

    def _ask(self, prompt: AuthPrompt) -> None:
        try:
            self.items.put(("answer", (prompt.id, self.on_prompt(prompt))))
        except BaseException as exc:  # handed to the waiting thread
            if not prompt.closed.is_set():  # a closed prompt's callback giving up is no failure
                self.items.put(("failed", exc))  # the flow still runs: cancelled below

    def run(self) -> LoginResult:
        reader = threading.Thread(target=self._read, name=f"aiipython-login-{self.provider}", daemon=True)
        reader.start()
        ended = False
        try:
            while True:
                kind, item = self.items.get()
                if kind in ("ended", "failed"):
                    ended = kind == "ended"
                    raise item
                if kind == "answer":
                    prompt_id, value = item
                    if prompt_id in self.pending and self.flow_id is not None:
                        del self.pending[prompt_id]
                        self.client.login_input(self.flow_id, str(value), prompt_id=prompt_id)
                    continue
                result = self._handle(item)
                if result is not None:
                    ended = True
                    return result
        except BaseException:
            if not ended and self.flow_id is not None:
                try:
                    self.client.cancel_login(self.flow_id)  # answers once pi's callback port is closed
                except AiipythonError:
                    pass  # it had ended by itself meanwhile
            raise
        finally:
            for prompt in self.pending.values():
                prompt.closed.set()  # their callbacks may stop waiting
            if ended:
                reader.join(5.0)

    def _handle(self, event: StreamEvent) -> LoginResult | None:
        data = event.data
        if event.type == "start":
            self.flow_id = str(_need(data, "id", "login start frame"))
        elif event.type == "auth_url":
            url = str(_need(data, "url", "auth_url frame"))
            self.on_auth_url(AuthUrl(url=url, instructions=_str(data, "instructions")))
        elif event.type == "device_code":
            expires = data.get("expiresInSeconds")
            self.on_auth_url(AuthUrl(url=str(_need(data, "verificationUri", "device_code frame")),
                                     user_code=str(_need(data, "userCode", "device_code frame")),
                                     expires_in_seconds=float(expires) if isinstance(expires, (int, float)) else None))
        elif event.type == "prompt":
            prompt = AuthPrompt.from_json(data)
            self.pending[prompt.id] = prompt
            threading.Thread(target=self._ask, args=(prompt,), name=f"aiipython-login-prompt-{prompt.id}",
                             daemon=True).start()
        elif event.type == "prompt_closed":
            closed = self.pending.pop(int(data.get("id") or 0), None)  # answered another way (the browser)
            if closed is not None:
                closed.closed.set()
        elif event.type in ("progress", "info"):
            message = _str(data, "message")
            if message:
                self.on_progress(message)
        elif event.type == "done":
            return LoginResult.from_json(data, self.provider)
        return None  # an event kind this client does not know yet: nothing to do

