"""pi's message types as pydantic models (``@earendil-works/pi-ai`` ``types.d.ts``, pi 1.6).

Python attributes are snake_case (``stop_reason``, ``cache_read``); each field's alias is pi's
camelCase name, so ``model_validate`` reads pi's JSON and ``model_dump(by_alias=True)`` writes it.
Builders: :func:`user` (text and images from a path, bytes or a data URL) and :func:`ctx`.
"""

from __future__ import annotations

import base64
import mimetypes
import re
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer
from pydantic.alias_generators import to_camel

__all__ = [
    "ThinkingLevel", "CacheRetention", "StopReason",
    "TextContent", "ThinkingContent", "ImageContent", "ToolCall",
    "UserMessage", "AssistantMessage", "ToolResultMessage", "Message",
    "Context", "Tool", "Usage", "Cost",
    "StreamOptions", "SimpleStreamOptions", "ThinkingBudgets",
    "user", "ctx", "now_ms",
]


def now_ms() -> int:
    """Unix time in milliseconds (pi's ``timestamp``)."""
    return int(time.time() * 1000)


class _Pi(BaseModel):
    """Base: snake_case attributes, pi's camelCase names as aliases; unknown pi fields are ignored."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    def to_pi(self) -> dict[str, Any]:
        """pi's JSON shape (camelCase, ``None`` fields left out)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class ThinkingLevel(StrEnum):
    """pi's ``ThinkingLevel`` (1.6 adds ``max``); no level means thinking off."""

    MINIMAL = "minimal"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    XHIGH = "xhigh"
    MAX = "max"


class CacheRetention(StrEnum):
    """pi's ``CacheRetention``: how long a provider keeps a prompt cache."""

    NONE = "none"
    SHORT = "short"
    LONG = "long"


class StopReason(StrEnum):
    """pi's ``StopReason`` (1.6 adds ``pending`` while streaming and ``deferred``)."""

    STOP = "stop"
    LENGTH = "length"
    TOOL_USE = "toolUse"
    ERROR = "error"
    ABORTED = "aborted"
    PENDING = "pending"
    DEFERRED = "deferred"


class TextContent(_Pi):
    """A text block."""

    type: Literal["text"] = "text"
    text: str = ""
    text_signature: str | None = None


class ThinkingContent(_Pi):
    """A thinking (reasoning) block; ``thinking_signature`` is the provider's opaque signature."""

    type: Literal["thinking"] = "thinking"
    thinking: str = ""
    thinking_signature: str | None = None
    redacted: bool | None = None


class ImageContent(_Pi):
    """An image: base64 ``data`` and its ``mime_type``."""

    type: Literal["image"] = "image"
    data: str = ""
    mime_type: str = "image/png"


class ToolCall(_Pi):
    """A tool call the model made: ``arguments`` is the parsed JSON object."""

    type: Literal["toolCall"] = "toolCall"
    id: str = ""
    name: str = ""
    arguments: dict[str, Any] = Field(default_factory=dict)
    thought_signature: str | None = None


UserContent: TypeAlias = Annotated[TextContent | ImageContent, Field(discriminator="type")]
AssistantContent: TypeAlias = Annotated[TextContent | ThinkingContent | ToolCall, Field(discriminator="type")]


class Cost(_Pi):
    """Dollars (not per million): what a call cost, split like :class:`Usage`.

    ``known`` is False when there is no price for the model (the LiteLLM backend on a model
    LiteLLM has no price for; a registry model without pi's ``cost``): the amounts are then 0.0
    and mean "unknown", not "free", so check ``known`` before adding them up. pi's own ``Cost``
    has no such field: a known cost serialises exactly as pi's (``known`` is left out of
    ``model_dump`` / :meth:`to_pi`); an unknown one adds ``known: false``, which
    ``model_validate`` reads back.
    """

    input: float = 0.0
    output: float = 0.0
    cache_read: float = 0.0
    cache_write: float = 0.0
    total: float = 0.0
    known: bool = True

    @model_serializer(mode="wrap")
    def _pi_shape(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if self.known:
            data.pop("known", None)
        return data


class Usage(_Pi):
    """Token counts and cost. ``input`` excludes cached tokens (pi's rule);
    ``total_tokens = input + output + cache_read + cache_write``; ``reasoning`` is the part of
    ``output`` spent thinking, when the provider reports it."""

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0
    total_tokens: int = 0
    reasoning: int | None = None
    cost: Cost = Field(default_factory=Cost)


class UserMessage(_Pi):
    """A user turn: a string, or text and image blocks."""

    role: Literal["user"] = "user"
    content: str | list[UserContent] = ""
    timestamp: int = Field(default_factory=now_ms)


class AssistantMessage(_Pi):
    """pi's ``AssistantMessage``: the model's reply (or the partial one while streaming)."""

    role: Literal["assistant"] = "assistant"
    content: list[AssistantContent] = Field(default_factory=list)
    api: str = ""
    provider: str = ""
    model: str = ""
    response_id: str | None = None
    response_model: str | None = None
    usage: Usage = Field(default_factory=Usage)
    stop_reason: StopReason = StopReason.STOP
    error_message: str | None = None
    timestamp: int = Field(default_factory=now_ms)
    duration_ms: float | None = None

    @property
    def text(self) -> str:
        """The text blocks, joined by newlines."""
        return "\n".join(c.text for c in self.content if isinstance(c, TextContent))

    @property
    def thinking_text(self) -> str:
        """The thinking blocks, joined by newlines."""
        return "\n".join(c.thinking for c in self.content if isinstance(c, ThinkingContent))

    @property
    def tool_calls(self) -> list[ToolCall]:
        """The tool calls, in order."""
        return [c for c in self.content if isinstance(c, ToolCall)]


class ToolResultMessage(_Pi):
    """The result of one tool call, sent back to the model."""

    role: Literal["toolResult"] = "toolResult"
    tool_call_id: str = ""
    tool_name: str = ""
    content: list[UserContent] = Field(default_factory=list)
    details: Any = None
    is_error: bool = False
    timestamp: int = Field(default_factory=now_ms)


Message: TypeAlias = Annotated[UserMessage | AssistantMessage | ToolResultMessage, Field(discriminator="role")]


class Tool(_Pi):
    """A tool the model may call: ``parameters`` is a JSON Schema object."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class Context(_Pi):
    """What a call sends: the system prompt, the conversation and the tools."""

    system_prompt: str | None = None
    messages: list[Message] = Field(default_factory=list)
    tools: list[Tool] | None = None


class ThinkingBudgets(_Pi):
    """Tokens per thinking level (pi's ``ThinkingBudgets``; ``None`` = pi's default)."""

    minimal: int | None = None
    low: int | None = None
    medium: int | None = None
    high: int | None = None


class StreamOptions(_Pi):
    """Options of one call (pi's ``StreamOptions``). ``None`` means the provider's default.

    On the pi backend only what the gateway carries is accepted (``temperature``, ``max_tokens``,
    ``session_id``, ``timeout_ms``, ``stop``, ``tool_choice``); the others are for the LiteLLM
    backend and are an error on pi, never dropped (docs/python_api.md "Options").
    """

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    temperature: float | None = None
    max_tokens: int | None = None
    session_id: str | None = None
    timeout_ms: int | None = None
    stop: list[str] | None = None
    tool_choice: str | dict[str, Any] | None = None
    cache_retention: CacheRetention | None = None
    headers: dict[str, str] | None = None
    api_key: str | None = Field(default=None, repr=False)
    max_retries: int | None = None


class SimpleStreamOptions(StreamOptions):
    """:class:`StreamOptions` plus pi's thinking level (``reasoning``; ``None`` = off)."""

    reasoning: ThinkingLevel | None = None
    thinking_budgets: ThinkingBudgets | None = None


# -- builders ------------------------------------------------------------------------------------

_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)$", re.DOTALL)
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF87a", "image/gif"),
          (b"GIF89a", "image/gif"))


def _sniff(data: bytes) -> str | None:
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _image(source: str | Path | bytes | ImageContent, where: str) -> ImageContent:
    if isinstance(source, ImageContent):
        return source
    if isinstance(source, bytes):
        mime = _sniff(source)
        if mime is None:
            raise ValueError(f"{where}: the bytes are not a PNG, JPEG, GIF or WebP image")
        return ImageContent(data=base64.b64encode(source).decode("ascii"), mime_type=mime)
    if isinstance(source, str) and source.startswith("data:"):
        match = _DATA_URL.match(source)
        if match is None:
            raise ValueError(f"{where}: a data URL must look like data:image/png;base64,...")
        return ImageContent(data=match["data"], mime_type=match["mime"])
    path = Path(source).expanduser()
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{where}: cannot read the image file {str(path)!r} ({exc.strerror})") from None
    mime = _sniff(raw) or mimetypes.guess_type(path.name)[0]
    if not mime or not mime.startswith("image/"):
        raise ValueError(f"{where}: {str(path)!r} is not an image file (PNG, JPEG, GIF or WebP)")
    return ImageContent(data=base64.b64encode(raw).decode("ascii"), mime_type=mime)


def user(text: str, images: list[str | Path | bytes | ImageContent] | None = None) -> UserMessage:
    """A :class:`UserMessage` of ``text`` and, optionally, images.

    Args:
        text: the prompt.
        images: each a local file path, the file's bytes, a ``data:image/...;base64,`` URL or an
            :class:`ImageContent`.

    Raises:
        ValueError: an image that cannot be read or is not an image (the message names it).
    """
    if not images:
        return UserMessage(content=text)
    parts: list[TextContent | ImageContent] = [TextContent(text=text)] if text else []
    parts += [_image(image, f"images[{i}]") for i, image in enumerate(images)]
    return UserMessage(content=parts)


def ctx(*messages: UserMessage | AssistantMessage | ToolResultMessage | str, system: str | None = None,
        tools: list[Tool] | None = None) -> Context:
    """A :class:`Context` of ``messages`` (a ``str`` is a user message), a system prompt and tools."""
    return Context(system_prompt=system, tools=tools,
                   messages=[user(m) if isinstance(m, str) else m for m in messages])
