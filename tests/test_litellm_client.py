"""LiteLLM as a client of the gateway's OpenAI-compatible API (issue 11): ``litellm.completion``
with ``model="openai/<provider>/<id>"``, ``api_base=<gateway>/v1`` and the client token, non-stream
and stream, on the echo provider, on a scripted upstream (``fake``) and on the embedded local model."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import litellm
import pytest
from conftest import FAKE, GATEWAY_CACHE, Reply

pytestmark = pytest.mark.gateway


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def call(gateway: Any, model: str, messages: list[dict[str, Any]], **kwargs: Any) -> Any:
    return litellm.completion(model=f"openai/{model}", api_base=f"{gateway.url}/v1", api_key=gateway.token,
                              messages=messages, num_retries=0, **kwargs)


def streamed(chunks: Any) -> tuple[str, Any]:
    text, usage = "", None
    for chunk in chunks:
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
        usage = getattr(chunk, "usage", None) or usage
    return text, usage


def test_echo_non_stream_and_stream(gateway: Any) -> None:
    done = call(gateway, "echo/echo", user("Hello, LiteLLM!"))
    assert done.choices[0].message.content == "Hello, LiteLLM!"
    assert done.choices[0].finish_reason == "stop"
    assert (done.usage.prompt_tokens, done.usage.completion_tokens) == (4, 4)
    text, usage = streamed(call(gateway, "echo/echo", user("Hello, LiteLLM!"), stream=True,
                                stream_options={"include_usage": True}))
    assert text == "Hello, LiteLLM!"
    assert usage is not None and usage.completion_tokens == 4


def test_scripted_upstream_with_usage_and_options(gateway: Any, fake_upstream: Any) -> None:
    fake_upstream.enqueue(Reply("Paris.", prompt_tokens=21, completion_tokens=2, cached_tokens=5),
                          Reply("one two three", prompt_tokens=7, completion_tokens=3))
    done = call(gateway, FAKE, user("Capital of France?"), temperature=0.1, top_p=0.5, seed=3, max_tokens=20)
    assert done.choices[0].message.content == "Paris."
    assert (done.usage.prompt_tokens, done.usage.completion_tokens, done.usage.total_tokens) == (21, 2, 23)
    assert done.usage.prompt_tokens_details.cached_tokens == 5
    first = fake_upstream.requests[0]
    assert (first["temperature"], first["top_p"], first["seed"], first["max_tokens"]) == (0.1, 0.5, 3, 20)
    text, usage = streamed(call(gateway, FAKE, user("Count."), stream=True, stream_options={"include_usage": True}))
    assert text == "one two three"
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (7, 3)


def test_errors_keep_their_kind(gateway: Any, fake_upstream: Any) -> None:
    fake_upstream.enqueue(Reply(status=429, headers={"retry-after": "2"}))
    with pytest.raises(litellm.RateLimitError):
        call(gateway, FAKE, user("hi"))
    with pytest.raises(litellm.BadRequestError, match="n"):
        call(gateway, FAKE, user("hi"), n=2)
    with pytest.raises(litellm.AuthenticationError):
        litellm.completion(model="openai/echo/echo", api_base=f"{gateway.url}/v1", api_key="wrong-token",
                           messages=user("hi"), num_retries=0)


@pytest.fixture(scope="module")
def local_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A gateway with the embedded local model started (as `aiipython serve` starts it)."""
    from aiipython._gateway import start_gateway
    from aiipython._settings import load_settings

    agent: Path = tmp_path_factory.mktemp("empty-agent")
    env = {"AIIPYTHON_CACHE_DIR": str(GATEWAY_CACHE), "AIIPYTHON_LOCAL_MODEL": "on",
           "PI_CODING_AGENT_DIR": str(agent), "PATH": os.environ.get("PATH", "")}
    gw = start_gateway(load_settings(env), local_model="eager")
    yield gw
    gw.close()
    from aiipython._local_model import close_local_model

    close_local_model()  # the process-wide server eager start made


@pytest.mark.e2e
def test_local_model_non_stream_and_stream(local_gateway: Any) -> None:
    done = call(local_gateway, "local/smollm2-135m", user("Name a colour."), max_tokens=12, temperature=0)
    assert done.choices[0].message.content
    assert done.usage.prompt_tokens > 0 and 1 < done.usage.completion_tokens <= 12
    text, usage = streamed(call(local_gateway, "local/smollm2-135m", user("Say hello."), max_tokens=12,
                                temperature=0, stream=True, stream_options={"include_usage": True}))
    assert text.strip()
    assert usage is not None and 1 < usage.completion_tokens <= 12
