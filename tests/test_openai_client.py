"""``aiipython.openai_client()`` / ``async_openai_client()`` / ``openai_base_url()``: the official
SDK bound to the process's gateway (``get_gateway()``), real gateway and real pi."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from conftest import FAKE
from fake_upstream import Reply

import aiipython
from aiipython._gateway import close_gateway, get_gateway

pytestmark = [pytest.mark.gateway, pytest.mark.usefixtures("process_gateway")]


def user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def test_the_base_url_is_the_process_gateways_v1() -> None:
    url = aiipython.openai_base_url()
    gateway = get_gateway()
    assert url == f"{gateway.url}/v1" and url.startswith("http://127.0.0.1:")


def test_the_client_calls_the_gateway_with_the_client_token(fake_upstream: Any) -> None:
    fake_upstream.enqueue(Reply("bound", prompt_tokens=4, completion_tokens=1))
    with aiipython.openai_client(max_retries=0) as client:
        gateway = get_gateway()
        assert client.api_key == gateway.token and client.api_key != gateway.admin_token
        assert str(client.base_url).rstrip("/") == aiipython.openai_base_url()
        assert {"echo/echo", FAKE} <= {m.id for m in client.models.list()}
        done = client.chat.completions.create(model=FAKE, messages=user("hi"))
        assert done.choices[0].message.content == "bound"
        assert done.usage is not None and (done.usage.prompt_tokens, done.usage.completion_tokens) == (4, 1)
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(model=FAKE, messages=user("hi"), n=2)
        assert info.value.param == "n"


def test_the_client_follows_a_restarted_gateway() -> None:
    with aiipython.openai_client(max_retries=0) as client:
        first = get_gateway()
        one = client.chat.completions.create(model="echo/echo", messages=user("one"))
        assert one.choices[0].message.content == "one"
        import psutil

        assert first.pid is not None
        psutil.Process(first.pid).kill()
        assert first.wait(30) is not None
        again = client.chat.completions.create(model="echo/echo", messages=user("two"))
        assert again.choices[0].message.content == "two"
        second = get_gateway()
        assert second is not first and second.token != first.token


def test_the_async_client() -> None:
    async def main() -> list[str]:
        async with aiipython.async_openai_client(max_retries=0) as client:
            answers = await asyncio.gather(*(client.chat.completions.create(model="echo/echo", messages=user(f"n {i}"))
                                             for i in range(3)))
            return [a.choices[0].message.content or "" for a in answers]

    assert asyncio.run(main()) == ["n 0", "n 1", "n 2"]


def test_the_endpoint_and_key_are_not_the_callers_to_choose() -> None:
    for kwargs in ({"base_url": "http://example.invalid/v1"}, {"api_key": "x"}):
        with pytest.raises(aiipython.ConfigurationError, match="sets .* itself"):
            aiipython.openai_client(**kwargs)
        with pytest.raises(aiipython.ConfigurationError, match="sets .* itself"):
            aiipython.async_openai_client(**kwargs)


@pytest.fixture
def _local_model_stopped_after() -> Iterator[None]:
    from aiipython._local_model import close_local_model

    yield
    close_gateway()
    close_local_model()


@pytest.mark.e2e
@pytest.mark.usefixtures("_local_model_stopped_after")
def test_a_local_model_call_starts_the_local_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("AIIPYTHON_LOCAL_MODEL", "on")
    monkeypatch.setenv("PI_CODING_AGENT_DIR", str(tmp_path))
    with aiipython.openai_client(max_retries=0, timeout=120) as client:
        assert get_gateway().local_model is None  # offered, not started: the call starts it
        done = client.chat.completions.create(model="local/smollm2-135m", messages=user("Say hi."), max_tokens=8)
        assert done.usage is not None and 1 < done.usage.completion_tokens <= 8
        assert get_gateway().local_model is not None
