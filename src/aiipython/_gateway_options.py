"""Where PiGatewayLM's calls go: the gateway arguments once (:class:`GatewayOptions`), the client
interface they need (:class:`LMClient`) and the shared per-gateway state (:class:`GatewayTarget`).

``make_lm``, :class:`~aiipython.PiGatewayLM` and its engines take the same four arguments
(``client``, ``gateway_url`` + ``gateway_token``, ``gateway_timeout``); they are checked here and
nowhere else. No dspy import: the factory uses this module before it knows the backend.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from ._errors import ConfigurationError

if TYPE_CHECKING:
    from ._client import StreamEvent

__all__ = ["LMClient", "GatewayOptions", "GatewayTarget"]


class LMClient(Protocol):
    """What PiGatewayLM and ``make_lm`` use of a gateway client; :class:`~aiipython.PiGatewayClient`
    is one (docs/protocol.md gives every shape). Replies are the gateway's JSON objects; failures
    raise aiipython's typed errors."""

    def list_models(self) -> dict[str, Any]:
        """``GET /models``."""
        ...

    def auth_status(self) -> dict[str, Any]:
        """``GET /auth/status``."""
        ...

    def complete(self, model: str, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None = None,
                 options: dict[str, Any] | None = None) -> dict[str, Any]:
        """``POST /lm/complete``: ``{"message", "model", "duration_ms"}``."""
        ...

    def stream(self, model: str, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None = None,
               options: dict[str, Any] | None = None) -> Iterator[StreamEvent]:
        """``POST /lm/stream``: its SSE frames, ending with ``done``."""
        ...

    async def acomplete(self, model: str, messages: list[dict[str, Any]], *,
                        tools: list[dict[str, Any]] | None = None,
                        options: dict[str, Any] | None = None) -> dict[str, Any]:
        """Async :meth:`complete`."""
        ...

    def astream(self, model: str, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None = None,
                options: dict[str, Any] | None = None) -> AsyncIterator[StreamEvent]:
        """Async :meth:`stream`."""
        ...

    def close(self) -> None:
        """Close the client's connections."""
        ...


@dataclass(frozen=True)
class GatewayOptions:
    """The gateway arguments of ``make_lm`` / ``PiGatewayLM``, checked together.

    ``client`` (an :class:`LMClient`) or ``url`` + ``token`` (a running gateway), else the
    process's gateway; ``timeout``: seconds one upstream call may take (the gateway's
    ``timeout_ms``), default ``AIIPYTHON_REQUEST_TIMEOUT``.

    Raises:
        aiipython.ConfigurationError: ``client`` with ``url``/``token``, ``url`` without ``token``
            (or the other way round), or a ``timeout`` that is not a positive number.
    """

    client: LMClient | None = None
    url: str | None = None
    token: str | None = None
    timeout: float | None = None

    #: The keyword names these options have in ``make_lm`` and ``PiGatewayLM``, by field.
    KEYWORDS: ClassVar[Mapping[str, str]] = {"client": "client", "url": "gateway_url", "token": "gateway_token",
                                             "timeout": "gateway_timeout"}

    def __post_init__(self) -> None:
        if self.client is not None and (self.url or self.token):
            raise ConfigurationError("pass either client= or gateway_url=/gateway_token=, not both")
        if bool(self.url) != bool(self.token):
            raise ConfigurationError("gateway_url= and gateway_token= go together (the token is the gateway's "
                                     "AIIPYTHON_GATEWAY_TOKEN)")
        timeout = self.timeout
        if timeout is not None:
            if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
                raise ConfigurationError(f"gateway_timeout={timeout!r} must be a positive number of seconds")
            object.__setattr__(self, "timeout", float(timeout))

    @classmethod
    def pop(cls, kwargs: dict[str, Any]) -> GatewayOptions:
        """Take ``client``, ``gateway_url``, ``gateway_token``, ``gateway_timeout`` out of ``kwargs``."""
        return cls(**{field: kwargs.pop(keyword) for field, keyword in cls.KEYWORDS.items() if keyword in kwargs})

    @property
    def given(self) -> list[str]:
        """The keyword names of the options that are set (for error messages)."""
        return [keyword for field, keyword in self.KEYWORDS.items() if getattr(self, field) is not None]

    def target(self) -> GatewayTarget:
        """A new :class:`GatewayTarget` for these options (nothing is connected yet)."""
        return GatewayTarget(self)


class GatewayTarget:
    """One gateway as PiGatewayLM sees it: the client to call (the given one, one made from
    url+token, or the process gateway's) and what pi said about each model (``/models``,
    cached). Shared by a sync/async engine pair, by ``copy()``s for other models and by
    ``make_lm``'s choice. Thread-safe."""

    def __init__(self, options: GatewayOptions | None = None) -> None:
        self.options = options or GatewayOptions()
        self._client: LMClient | None = self.options.client
        self._owned = False
        self._lock = threading.Lock()
        self._models: dict[str, dict[str, Any] | None] = {}

    def client(self) -> LMClient:
        """The client; the process gateway's (:func:`aiipython.get_client`) is asked each time,
        so a gateway that died is replaced."""
        if self._client is not None:
            return self._client
        from ._client import PiGatewayClient, get_client

        if self.options.url is None:
            return get_client()  # the process gateway, started on first use and restarted if it died
        with self._lock:
            if self._client is None:
                self._client = PiGatewayClient(url=self.options.url, token=self.options.token)
                self._owned = True
            return self._client

    def model_info(self, model: str) -> dict[str, Any] | None:
        """The ``/models`` entry for ``provider/id``, or None when pi does not know it (cached).

        Raises:
            aiipython.GatewayError subclasses: the gateway could not be asked.
        """
        if model in self._models:
            return self._models[model]
        listing = self.client().list_models()
        provider, _, model_id = model.partition("/")
        found = next((m for m in listing.get("models") or []
                      if isinstance(m, dict) and m.get("provider") == provider and m.get("id") == model_id), None)
        with self._lock:
            self._models[model] = found
        return found

    def remember(self, model: str, info: Mapping[str, Any]) -> None:
        """Record ``model``'s ``/models`` entry (saves the lookup when the caller has it)."""
        with self._lock:
            self._models[model] = dict(info)

    def close(self) -> None:
        """Close a client made from url+token; a given client or the process's stays open."""
        with self._lock:
            client, owned = self._client, self._owned
            if owned:
                self._client, self._owned = None, False
        if owned and client is not None:
            client.close()
