"""When a failed gateway call may be sent once more (``PiGatewayClient``, docs/architecture.md
"Process model"): only when it provably never reached the gateway, and only before any response
byte. A call that may have reached a provider is never sent twice."""

from __future__ import annotations

import httpx

from ._errors import GatewayExitedError

__all__ = ["NotDelivered", "not_delivered"]


class NotDelivered(Exception):
    """Internal: the call failed before the gateway read it; it may be sent once more."""

    def __init__(self, error: GatewayExitedError, *, refused: bool) -> None:
        super().__init__(str(error))
        self.error = error
        self.refused = refused


def not_delivered(exc: httpx.TransportError) -> bool:
    """True when the request provably never reached the gateway's code: the connection was
    refused (nothing sent), or it was reset (RST). TCP resets a connection whose process closed it
    with received data unread; a gateway that had read our request would close with a FIN (an
    EOF here, ``RemoteProtocolError``) instead, and that call is not sent again."""
    if isinstance(exc, httpx.ConnectError):
        return True
    if not isinstance(exc, (httpx.ReadError, httpx.WriteError)):
        return False
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, (ConnectionResetError, BrokenPipeError)):
            return True
        cause = cause.__cause__ or cause.__context__
    return False
