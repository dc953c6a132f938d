"""aiipython: use Pi's model registry, credentials and provider transport from DSPy.

``dspy.configure(lm=aiipython.make_lm())`` is the one line most users need. Importing this
package is cheap: no litellm, no dspy, no sockets and no Node until first use (the names below
load their modules on first access).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._errors import (
    AiipythonError,
    AmbiguousModelError,
    AuthenticationError,
    ConfigurationError,
    ContextWindowExceededError,
    GatewayClosedError,
    GatewayError,
    GatewayExitedError,
    GatewayInstallError,
    GatewayOverloadedError,
    GatewayProtocolError,
    GatewayStartError,
    GatewayUnavailableError,
    InvalidRequestError,
    LocalModelError,
    LoginCancelledError,
    LoginError,
    LoginTimeoutError,
    ModelNotFoundError,
    NodeNotFoundError,
    PermissionDeniedError,
    ProviderNotConfiguredError,
    ProviderNotFoundError,
    RateLimitError,
    RequestTooLargeError,
    UpstreamAuthError,
    UpstreamError,
    UpstreamTimeoutError,
)

if TYPE_CHECKING:
    from ._ai.api import (
        acomplete,
        acomplete_simple,
        astream,
        astream_simple,
        complete,
        complete_simple,
        quick,
        stream,
        stream_simple,
    )
    from ._ai.events import (
        AssistantMessageEvent,
        AssistantMessageEventStream,
        AsyncAssistantMessageEventStream,
        DoneEvent,
        ErrorEvent,
        StartEvent,
        TextDeltaEvent,
        TextEndEvent,
        TextStartEvent,
        ThinkingDeltaEvent,
        ThinkingEndEvent,
        ThinkingStartEvent,
        ToolCallDeltaEvent,
        ToolCallEndEvent,
        ToolCallStartEvent,
    )
    from ._ai.modelsdev import sync_models
    from ._ai.registry import (
        Model,
        ModelCapabilities,
        ModelCost,
        ModelLimits,
        ModelModalities,
        calculate_cost,
        estimate_cost,
        get_model,
        get_models,
    )
    from ._ai.types import (
        AssistantMessage,
        CacheRetention,
        Context,
        Cost,
        ImageContent,
        Message,
        SimpleStreamOptions,
        StopReason,
        StreamOptions,
        TextContent,
        ThinkingBudgets,
        ThinkingContent,
        ThinkingLevel,
        Tool,
        ToolCall,
        ToolResultMessage,
        Usage,
        UserMessage,
        ctx,
        user,
    )
    from ._client import PiGatewayClient, StreamEvent, get_client
    from ._factory import make_lm
    from ._gateway import Gateway, close_gateway, get_gateway, start_gateway
    from ._lm import PiGatewayLM
    from ._login import (
        AuthPrompt,
        AuthUrl,
        LoginMethod,
        LoginProvider,
        LoginResult,
        LogoutResult,
        auth_providers,
        login,
        logout,
    )
    from ._openai import async_openai_client, openai_base_url, openai_client
    from ._streaming_lm import StreamingLM
    from ._usage import reset_usage, usage_summary

__version__ = "0.1.0"

_LAZY = {
    "PiGatewayClient": "._client",
    "StreamEvent": "._client",
    "get_client": "._client",
    "Gateway": "._gateway",
    "get_gateway": "._gateway",
    "start_gateway": "._gateway",
    "close_gateway": "._gateway",
    "PiGatewayLM": "._lm",
    "StreamingLM": "._streaming_lm",
    "make_lm": "._factory",
    "openai_client": "._openai",
    "async_openai_client": "._openai",
    "openai_base_url": "._openai",
    "login": "._login",
    "logout": "._login",
    "auth_providers": "._login",
    "LoginProvider": "._login",
    "LoginMethod": "._login",
    "LoginResult": "._login",
    "LogoutResult": "._login",
    "AuthUrl": "._login",
    "AuthPrompt": "._login",
    "usage_summary": "._usage",
    "reset_usage": "._usage",
}
#: The typed API (docs/python_api.md), module by module; nothing of it loads until first use.
_AI = {
    "._ai.types": ("ThinkingLevel", "CacheRetention", "StopReason", "TextContent", "ThinkingContent",
                   "ImageContent", "ToolCall", "UserMessage", "AssistantMessage", "ToolResultMessage",
                   "Message", "Context", "Tool", "Usage", "Cost", "StreamOptions", "SimpleStreamOptions",
                   "ThinkingBudgets", "user", "ctx"),
    "._ai.events": ("StartEvent", "TextStartEvent", "TextDeltaEvent", "TextEndEvent", "ThinkingStartEvent",
                    "ThinkingDeltaEvent", "ThinkingEndEvent", "ToolCallStartEvent", "ToolCallDeltaEvent",
                    "ToolCallEndEvent", "DoneEvent", "ErrorEvent", "AssistantMessageEvent",
                    "AssistantMessageEventStream", "AsyncAssistantMessageEventStream"),
    "._ai.registry": ("Model", "ModelCost", "ModelLimits", "ModelCapabilities", "ModelModalities", "get_model",
                      "get_models", "calculate_cost", "estimate_cost"),
    "._ai.modelsdev": ("sync_models",),
    "._ai.api": ("complete", "stream", "complete_simple", "stream_simple", "quick", "acomplete", "astream",
                 "acomplete_simple", "astream_simple"),
}
_LAZY.update({name: module for module, names in _AI.items() for name in names})

__all__ = [
    "make_lm",
    "usage_summary",
    "reset_usage",
    "PiGatewayLM",
    "StreamingLM",
    "PiGatewayClient",
    "StreamEvent",
    "get_client",
    "Gateway",
    "get_gateway",
    "start_gateway",
    "close_gateway",
    "openai_client",
    "async_openai_client",
    "openai_base_url",
    "login",
    "logout",
    "auth_providers",
    "LoginProvider",
    "LoginMethod",
    "LoginResult",
    "LogoutResult",
    "AuthUrl",
    "AuthPrompt",
    "AiipythonError",
    "AmbiguousModelError",
    "AuthenticationError",
    "ConfigurationError",
    "ContextWindowExceededError",
    "GatewayClosedError",
    "GatewayError",
    "GatewayExitedError",
    "GatewayInstallError",
    "GatewayOverloadedError",
    "GatewayProtocolError",
    "GatewayStartError",
    "GatewayUnavailableError",
    "InvalidRequestError",
    "LocalModelError",
    "LoginCancelledError",
    "LoginError",
    "LoginTimeoutError",
    "ModelNotFoundError",
    "NodeNotFoundError",
    "PermissionDeniedError",
    "ProviderNotConfiguredError",
    "ProviderNotFoundError",
    "RateLimitError",
    "RequestTooLargeError",
    "UpstreamAuthError",
    "UpstreamError",
    "UpstreamTimeoutError",
    # the typed API (docs/python_api.md)
    "Model", "ModelCost", "ModelLimits", "ModelCapabilities", "ModelModalities", "get_model", "get_models",
    "calculate_cost", "estimate_cost", "sync_models",
    "ThinkingLevel", "CacheRetention", "StopReason", "TextContent", "ThinkingContent", "ImageContent",
    "ToolCall", "UserMessage", "AssistantMessage", "ToolResultMessage", "Message", "Context", "Tool",
    "Usage", "Cost", "StreamOptions", "SimpleStreamOptions", "ThinkingBudgets", "user", "ctx",
    "StartEvent", "TextStartEvent", "TextDeltaEvent", "TextEndEvent", "ThinkingStartEvent",
    "ThinkingDeltaEvent", "ThinkingEndEvent", "ToolCallStartEvent", "ToolCallDeltaEvent", "ToolCallEndEvent",
    "DoneEvent", "ErrorEvent", "AssistantMessageEvent", "AssistantMessageEventStream",
    "AsyncAssistantMessageEventStream",
    "complete", "stream", "complete_simple", "stream_simple", "quick", "acomplete", "astream",
    "acomplete_simple", "astream_simple",
]

for _name in __all__:
    _obj = globals().get(_name)
    if isinstance(_obj, type):
        _obj.__module__ = "aiipython"


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'aiipython' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    if isinstance(value, type):
        value.__module__ = "aiipython"
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
