"""``stream_text()``: one chat answer from the gateway's ``/lm/stream``, its text deltas handed to
a callback as they arrive; ``aiipython ask`` and ``aiipython demo`` both print through it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._client import PiGatewayClient, get_client, openai_usage

__all__ = ["StreamedText", "stream_text"]


@dataclass(frozen=True)
class StreamedText:
    """The streamed answer: ``text``, pi's ``stop_reason`` and OpenAI-shaped ``usage`` (tokens,
    ``cost_usd`` in dollars; :func:`~aiipython._client.openai_usage`)."""

    text: str
    stop_reason: str | None
    usage: dict[str, Any]


def stream_text(model: str, messages: list[dict[str, Any]], *, on_text: Callable[[str], None],
                options: dict[str, Any] | None = None, client: PiGatewayClient | None = None) -> StreamedText:
    """Stream ``model``'s answer to ``messages`` (OpenAI chat messages), calling ``on_text`` with
    each text delta; the process gateway unless ``client`` is given.

    Raises:
        aiipython.GatewayError subclasses, as :meth:`PiGatewayClient.stream` (a failed call never
        returns).
    """
    parts: list[str] = []
    done: dict[str, Any] | None = None
    for event in (client or get_client()).stream(model, messages, options=options):
        if event.type == "text_delta" and event.delta:
            parts.append(event.delta)
            on_text(event.delta)
        elif event.type == "done":
            done = event.message or {}
    assert done is not None  # stream() raises unless it ends with done
    text = "".join(block.get("text", "") for block in done.get("content", []) if block.get("type") == "text")
    return StreamedText(text=text or "".join(parts), stop_reason=done.get("stopReason"),
                        usage=openai_usage(done.get("usage")))
