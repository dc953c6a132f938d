"""The gateway's OpenAI-compatible API through the official ``openai`` SDK (issue 11).

Real gateway, real pi: the SDK -> /v1 -> pi's openai-completions -> the scripted upstream
(provider ``fake``, tests/conftest.py), and the echo provider ``echo/echo``. Assertions read what
the SDK parsed and what reached the upstream.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from conftest import FAKE, Reply

pytestmark = pytest.mark.gateway


@pytest.fixture
def oai(gateway: Any) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=gateway.token, max_retries=0)
    yield client
    client.close()


def user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def test_models_list_and_retrieve_an_id_with_a_slash(oai: openai.OpenAI) -> None:
    ids = [m.id for m in oai.models.list()]
    assert FAKE in ids
    assert "echo/echo" in ids
    model = oai.models.retrieve(FAKE)
    assert (model.id, model.object, model.owned_by) == (FAKE, "model", "fake")
    with pytest.raises(openai.NotFoundError) as info:
        oai.models.retrieve("fake/no-such-model")
    assert "unknown model" in str(info.value)


def test_chat_non_streaming_with_usage(oai: openai.OpenAI, fake_upstream: Any) -> None:
    fake_upstream.enqueue(Reply("Paris is the capital.", prompt_tokens=30, completion_tokens=5, cached_tokens=10))
    done = oai.chat.completions.create(model=FAKE, messages=[{"role": "system", "content": "Be brief."},
                                                             *user("Capital of France?")])
    assert done.object == "chat.completion"
    assert done.model == FAKE
    choice = done.choices[0]
    assert choice.message.content == "Paris is the capital."
    assert choice.finish_reason == "stop"
    assert done.usage is not None
    assert (done.usage.prompt_tokens, done.usage.completion_tokens, done.usage.total_tokens) == (30, 5, 35)
    assert done.usage.prompt_tokens_details is not None
    assert done.usage.prompt_tokens_details.cached_tokens == 10
    (sent,) = fake_upstream.requests
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]


def test_chat_streaming_with_usage(oai: openai.OpenAI, fake_upstream: Any) -> None:
    fake_upstream.enqueue(Reply("one two three", prompt_tokens=12, completion_tokens=3))
    chunks = list(oai.chat.completions.create(model=FAKE, messages=user("Count."), stream=True,
                                              stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three"
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) >= 3
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    usage = chunks[-1].usage
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (12, 3)


def test_tools_over_two_turns(oai: openai.OpenAI, fake_upstream: Any) -> None:
    tools: list[Any] = [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    call_7 = {"id": "call_7", "name": "get_weather", "arguments": {"city": "Paris"}}
    fake_upstream.enqueue(Reply("", tool_calls=[call_7]), Reply("It is sunny in Paris."))
    messages: list[Any] = user("Weather in Paris?")
    first = oai.chat.completions.create(model=FAKE, messages=messages, tools=tools, tool_choice="auto")
    assert first.choices[0].finish_reason == "tool_calls"
    calls = first.choices[0].message.tool_calls
    assert calls is not None and len(calls) == 1
    call = calls[0]
    assert call.type == "function"
    assert (call.id, call.function.name) == ("call_7", "get_weather")
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    messages += [first.choices[0].message, {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"}]
    second = oai.chat.completions.create(model=FAKE, messages=messages, tools=tools)
    assert second.choices[0].message.content == "It is sunny in Paris."
    tool_msg = next(m for m in fake_upstream.requests[1]["messages"] if m["role"] == "tool")
    assert tool_msg["tool_call_id"] == "call_7"
    assert "sunny, 21 C" in json.dumps(tool_msg["content"])


def test_json_mode_and_json_schema_reach_the_upstream(oai: openai.OpenAI, fake_upstream: Any) -> None:
    fake_upstream.enqueue(Reply('{"answer": "4"}'), Reply('{"answer": "4"}'))
    done = oai.chat.completions.create(model=FAKE, messages=user("2+2? JSON."), response_format={"type": "json_object"})
    assert json.loads(done.choices[0].message.content or "") == {"answer": "4"}
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"],
              "additionalProperties": False}
    oai.chat.completions.create(model=FAKE, messages=user("2+2?"), seed=7, top_p=0.5,
                                response_format={"type": "json_schema",
                                                 "json_schema": {"name": "answer", "schema": schema, "strict": True}})
    first, second = fake_upstream.requests
    assert first["response_format"] == {"type": "json_object"}
    assert second["response_format"]["json_schema"]["schema"] == schema
    assert (second["seed"], second["top_p"]) == (7, 0.5)


def test_reasoning_is_returned_as_reasoning_content(oai: openai.OpenAI, fake_upstream: Any) -> None:
    fake_upstream.enqueue(Reply("4", reasoning="2 and 2 make 4."), Reply("4", reasoning="2 and 2 make 4."))
    done = oai.chat.completions.create(model=FAKE, messages=user("2+2?"))
    assert (done.choices[0].message.model_extra or {}).get("reasoning_content") == "2 and 2 make 4."
    chunks = list(oai.chat.completions.create(model=FAKE, messages=user("2+2?"), stream=True))
    thought = "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content") or ""
                      for c in chunks if c.choices)
    assert thought == "2 and 2 make 4."


def test_an_upstream_429_is_a_rate_limit_error_with_retry_after(oai: openai.OpenAI, fake_upstream: Any) -> None:
    fake_upstream.enqueue(Reply(status=429, headers={"retry-after": "3"},
                                error_body={"error": {"message": "slow down", "type": "rate_limit_error"}}))
    with pytest.raises(openai.RateLimitError) as info:
        oai.chat.completions.create(model=FAKE, messages=user("hi"))
    assert info.value.status_code == 429
    assert info.value.response.headers["retry-after"] == "3"
    assert info.value.code == "rate_limit_exceeded"


@pytest.mark.parametrize("stream", [False, True])
def test_an_upstream_500_is_never_a_success(oai: openai.OpenAI, fake_upstream: Any, stream: bool) -> None:
    fake_upstream.enqueue(Reply(status=500))
    with pytest.raises(openai.InternalServerError) as info:
        result = oai.chat.completions.create(model=FAKE, messages=user("hi"), stream=stream)
        list(result) if stream else None  # type: ignore[call-overload]
    assert info.value.status_code == 502
    assert isinstance(info.value, openai.APIStatusError)


def test_strict_validation_is_a_bad_request_naming_the_parameter(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        oai.chat.completions.create(model=FAKE, messages=user("hi"), n=2)
    assert info.value.param == "n"
    with pytest.raises(openai.BadRequestError) as info:
        oai.chat.completions.create(model=FAKE, messages=user("hi"), logprobs=True)
    assert info.value.param == "logprobs"


def test_raw_response_shows_the_request_id(oai: openai.OpenAI, fake_upstream: Any) -> None:
    raw = oai.chat.completions.with_raw_response.create(model=FAKE, messages=user("hi"),
                                                        extra_headers={"x-request-id": "req-from-the-client-1"})
    assert raw.headers["x-request-id"] == "req-from-the-client-1"
    assert raw.parse().choices[0].message.content == "ok"
    assert oai.chat.completions.with_raw_response.create(model=FAKE, messages=user("hi")).headers["x-request-id"]


def test_echo_end_to_end(oai: openai.OpenAI) -> None:
    done = oai.chat.completions.create(model="echo/echo", messages=user("Hello there, echo!"))
    assert done.choices[0].message.content == "Hello there, echo!"
    assert done.usage is not None and done.usage.completion_tokens == 5
    stream = oai.chat.completions.create(model="echo/echo", messages=user("Hello there, echo!"), stream=True)
    deltas = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
    assert "".join(deltas) == "Hello there, echo!"
    assert len(deltas) == 5


def test_async_client(gateway: Any) -> None:
    import asyncio

    async def main() -> str:
        async with openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=gateway.token, max_retries=0) as client:
            done = await client.chat.completions.create(model="echo/echo", messages=user("async hello"))
            return done.choices[0].message.content or ""

    assert asyncio.run(main()) == "async hello"


def test_the_gateway_token_is_required(gateway: Any) -> None:
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="wrong-token", max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError):
            bad.models.list()


def test_responses_non_streaming(oai: openai.OpenAI, fake_upstream: Any) -> None:
    fake_upstream.enqueue(Reply("Paris.", reasoning="The capital of France.", prompt_tokens=20, completion_tokens=4))
    resp = oai.responses.create(model=FAKE, input="Capital of France?", instructions="Be brief.")
    assert (resp.object, resp.status, resp.model) == ("response", "completed", FAKE)
    assert resp.output_text == "Paris."
    assert [item.type for item in resp.output] == ["reasoning", "message"]
    reasoning = resp.output[0]
    assert reasoning.type == "reasoning" and reasoning.content is not None
    assert reasoning.content[0].text == "The capital of France."
    assert resp.usage is not None
    assert (resp.usage.input_tokens, resp.usage.output_tokens, resp.usage.total_tokens) == (20, 4, 24)
    (sent,) = fake_upstream.requests
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]


def test_responses_streaming_event_order(oai: openai.OpenAI, fake_upstream: Any) -> None:
    fake_upstream.enqueue(Reply("one two three"))
    events = list(oai.responses.create(model=FAKE, input="Count.", stream=True))
    types = [e.type for e in events]
    deltas = types.count("response.output_text.delta")
    assert deltas == 3
    assert types == ["response.created", "response.in_progress", "response.output_item.added",
                     "response.content_part.added", *["response.output_text.delta"] * deltas,
                     "response.output_text.done", "response.content_part.done", "response.output_item.done",
                     "response.completed"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    completed = events[-1]
    assert completed.type == "response.completed"
    assert completed.response.output_text == "one two three"
    assert completed.response.usage is not None and completed.response.usage.output_tokens == 3


def test_responses_function_call_round_trip(oai: openai.OpenAI, fake_upstream: Any) -> None:
    tools: list[Any] = [{"type": "function", "name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}, "strict": None}]
    call_7 = {"id": "call_7", "name": "get_weather", "arguments": {"city": "Paris"}}
    fake_upstream.enqueue(Reply("", tool_calls=[call_7]), Reply("Sunny."))
    first = oai.responses.create(model=FAKE, input="Weather in Paris?", tools=tools)
    (call,) = first.output
    assert call.type == "function_call"
    assert (call.call_id, call.name, json.loads(call.arguments)) == ("call_7", "get_weather", {"city": "Paris"})
    second = oai.responses.create(model=FAKE, tools=tools, input=[
        {"role": "user", "content": "Weather in Paris?"},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"},
    ])
    assert second.output_text == "Sunny."
    assert any(m["role"] == "tool" for m in fake_upstream.requests[1]["messages"])


def test_responses_refuse_stored_state(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        oai.responses.create(model=FAKE, input="hi", previous_response_id="resp_123")
    assert info.value.param == "previous_response_id"
    assert "stores nothing" in str(info.value)


def test_an_oversized_body_is_a_413_naming_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    from aiipython._gateway import start_gateway
    from aiipython._settings import load_settings

    monkeypatch.setenv("AIIPYTHON_GATEWAY_BODY_LIMIT", "65536")
    small = start_gateway(load_settings())
    try:
        with openai.OpenAI(base_url=f"{small.url}/v1", api_key=small.token, max_retries=0) as client:
            with pytest.raises(openai.APIStatusError) as info:
                client.chat.completions.create(model="echo/echo", messages=user("x" * 200_000))
            assert info.value.status_code == 413
            assert info.value.code == "request_too_large"
            assert "larger than the limit of 65536 bytes" in info.value.message
            with pytest.raises(openai.APIStatusError) as info:
                client.responses.create(model="echo/echo", input="x" * 200_000)
            assert info.value.status_code == 413
            still = client.chat.completions.create(model="echo/echo", messages=user("still serving"))
            assert still.choices[0].message.content == "still serving"
    finally:
        small.close()
