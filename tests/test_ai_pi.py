"""The typed API (aiipython.complete / stream / quick ...) on the pi backend: the real gateway and
pi, against the scripted upstream that pi knows as provider ``fake`` (tests/conftest.py)."""

from __future__ import annotations

import base64
import threading
from pathlib import Path

import pytest
from conftest import FAKE, Reply

import aiipython
from aiipython import (
    AssistantMessage,
    Context,
    ErrorEvent,
    SimpleStreamOptions,
    StopReason,
    StreamOptions,
    TextContent,
    ThinkingLevel,
    Tool,
    ToolResultMessage,
    UserMessage,
    ctx,
    user,
)

pytestmark = pytest.mark.gateway

#: A 1x1 PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


def types(events: list[object]) -> list[str]:
    return [e.type for e in events]  # type: ignore[attr-defined]


def test_stream_event_order_and_partial_growth(client, fake_upstream) -> None:
    fake_upstream.enqueue(Reply("Hello big world", prompt_tokens=11, completion_tokens=3))
    seen: list[str] = []
    events = []
    for event in aiipython.stream(FAKE, ctx(user("hi"), system="Be brief."), client=client):
        events.append(event)
        if event.type == "text_delta":
            seen.append(event.partial.text)
    assert types(events) == ["start", "text_start", "text_delta", "text_delta", "text_delta", "text_end", "done"]
    assert seen == ["Hello ", "Hello big ", "Hello big world"]
    assert events[0].partial is events[-2].partial  # one growing message, as in pi
    assert events[-2].content == "Hello big world"
    done = events[-1]
    assert done.reason is StopReason.STOP and done.message.text == "Hello big world"
    assert (done.message.provider, done.message.model, done.message.api) == ("fake", "fake-model", "openai-completions")
    usage = done.message.usage
    assert (usage.input, usage.output, usage.total_tokens) == (11, 3, 14)
    assert usage.cost.total == pytest.approx((11 * 1.0 + 3 * 2.0) / 1e6)  # models.json: $1 / $2 per 1M
    sent = fake_upstream.requests[0]["messages"]
    assert sent == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]


def test_result_and_complete(client, fake_upstream) -> None:
    fake_upstream.enqueue(Reply("streamed answer"), Reply("completed answer"))
    streamed = aiipython.stream(FAKE, "q", client=client).result()
    completed = aiipython.complete(FAKE, Context(messages=[UserMessage(content="q")]), client=client)
    assert isinstance(streamed, AssistantMessage) and streamed.text == "streamed answer"
    assert completed.text == "completed answer" and completed.stop_reason is StopReason.STOP
    assert completed.usage.output == 3 and completed.duration_ms is not None


def test_quick(client, fake_upstream) -> None:
    fake_upstream.enqueue(Reply("4"))
    assert aiipython.quick("What is 2+2?", FAKE, system="Answer with a number.", max_tokens=5,
                           client=client).text == "4"
    sent = fake_upstream.requests[0]
    assert sent["messages"][0] == {"role": "system", "content": "Answer with a number."}
    assert sent["max_tokens"] == 5


def test_tool_calling_over_two_turns(client, fake_upstream) -> None:
    """The seed's weather example, as written there."""
    fake_upstream.enqueue(Reply("", tool_calls=[{"id": "call_7", "name": "get_weather",
                                                 "arguments": {"location": "Tokyo"}}]),
                          Reply("It is 22°C and sunny in Tokyo."))
    weather_tool = Tool(name="get_weather", description="Get current weather for a location",
                        parameters={"type": "object", "properties": {"location": {"type": "string"}},
                                    "required": ["location"]})
    context = Context(messages=[UserMessage(content="What's the weather in Tokyo?")], tools=[weather_tool])
    answer, outer = [], []
    for event in aiipython.stream(FAKE, context, client=client):
        outer.append(event.type)
        if event.type == "toolcall_end":
            tc = event.tool_call
            assert (tc.id, tc.name, tc.arguments) == ("call_7", "get_weather", {"location": "Tokyo"})
            tool_result = {"temperature": "22°C", "condition": "Sunny"}
            context.messages.append(event.partial)
            context.messages.append(ToolResultMessage(tool_call_id=tc.id, tool_name=tc.name,
                                                      content=[TextContent(text=str(tool_result))]))
            for event2 in aiipython.stream(FAKE, context, client=client):
                if event2.type == "text_delta":
                    answer.append(event2.delta)
    assert outer == ["start", "toolcall_start", "toolcall_delta", "toolcall_end", "done"]
    assert "".join(answer) == "It is 22°C and sunny in Tokyo."
    first, second = fake_upstream.requests
    assert first["tools"][0]["function"]["name"] == "get_weather"
    assert [m["role"] for m in second["messages"]] == ["user", "assistant", "tool"]
    assert second["messages"][1]["tool_calls"][0]["id"] == "call_7"
    assert second["messages"][2]["tool_call_id"] == "call_7"
    assert "Sunny" in second["messages"][2]["content"]


def test_thinking_from_the_upstream(client, fake_upstream) -> None:
    fake_upstream.enqueue(Reply("4", reasoning="two and two make four"))
    events = list(aiipython.stream_simple(FAKE, "2+2?", client=client))
    # pi's openai-completions ends every block at the end of the reply, in content order
    assert types(events) == ["start", "thinking_start", "thinking_delta", "text_start", "text_delta",
                             "thinking_end", "text_end", "done"]
    assert events[5].content == "two and two make four"
    message = events[-1].message
    assert (message.thinking_text, message.text) == ("two and two make four", "4")


def test_reasoning_level_the_model_lacks_is_an_error(client, fake_upstream) -> None:
    options = SimpleStreamOptions(reasoning=ThinkingLevel.HIGH)
    with pytest.raises(aiipython.InvalidRequestError, match="high"):
        aiipython.complete_simple(FAKE, "hi", options, client=client)
    (event,) = list(aiipython.stream_simple(FAKE, "hi", options, client=client))
    assert isinstance(event, ErrorEvent) and isinstance(event.exception, aiipython.InvalidRequestError)
    assert fake_upstream.calls == 0


def test_image_from_a_local_file(client, fake_upstream, tmp_path: Path) -> None:
    path = tmp_path / "dot.png"
    path.write_bytes(PNG)
    fake_upstream.enqueue(Reply("a dot"))
    reply = aiipython.complete(FAKE, ctx(user("What is this?", images=[path])), client=client)
    assert reply.text == "a dot"
    parts = fake_upstream.requests[0]["messages"][0]["content"]
    assert parts[0] == {"type": "text", "text": "What is this?"}
    assert parts[1]["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(PNG).decode()


def test_bad_image_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="not an image"):
        user("x", images=[tmp_path / "notes.txt"])
    with pytest.raises(ValueError, match="cannot read"):
        user("x", images=[tmp_path / "missing.png"])


def test_upstream_500_ends_the_stream_and_complete_raises(client, fake_upstream) -> None:
    fake_upstream.enqueue(Reply(status=500), Reply(status=500))
    events = list(aiipython.stream(FAKE, "hi", client=client))
    (event,) = events
    assert isinstance(event, ErrorEvent) and event.reason is StopReason.ERROR
    assert isinstance(event.exception, aiipython.UpstreamError)
    assert event.error.stop_reason is StopReason.ERROR and event.error.error_message
    assert "sk-test-secret-key-123" not in event.error.error_message
    with pytest.raises(aiipython.UpstreamError):
        aiipython.complete(FAKE, "hi", client=client)


@pytest.mark.parametrize(("call", "match"), [
    (lambda: aiipython.quick("hi", FAKE, reasoning="off"), "'minimal', 'low', 'medium', 'high', 'xhigh', 'max'"),
    (lambda: aiipython.quick("hi", FAKE, max_tokens="lots"), "max_tokens"),  # type: ignore[arg-type]
    (lambda: aiipython.complete(FAKE, ["hi"]), "context must be a Context"),  # type: ignore[arg-type]
    (lambda: aiipython.stream(FAKE, "hi", {"max_tokens": 3}), "options must be a StreamOptions"),  # type: ignore[arg-type]
], ids=["quick-reasoning-off", "quick-max-tokens", "complete-context", "stream-options"])
def test_bad_arguments_are_configuration_errors(fake_upstream, call, match: str) -> None:  # type: ignore[no-untyped-def]
    """A bad argument is aiipython's ConfigurationError (still a ValueError), naming what is
    accepted, raised before any call (and before the backend is chosen)."""
    with pytest.raises(aiipython.ConfigurationError, match=match):
        call()
    assert fake_upstream.calls == 0


def test_option_the_gateway_cannot_carry_is_an_error(client) -> None:
    with pytest.raises(aiipython.ConfigurationError, match="api_key"):
        aiipython.complete(FAKE, "hi", StreamOptions(api_key="x"), client=client)


def test_breaking_out_closes_the_upstream_connection(client, fake_upstream) -> None:
    closed = threading.Event()
    fake_upstream.enqueue(Reply("one two three", closed=closed))
    for event in aiipython.stream(FAKE, "hi", client=client):
        if event.type == "text_delta":
            break
    assert closed.wait(20), "the upstream still had its connection open"


def test_closed_stream_result_is_aborted(client, fake_upstream) -> None:
    closed = threading.Event()
    fake_upstream.enqueue(Reply("one two three", closed=closed))
    with aiipython.stream(FAKE, "hi", client=client) as events:
        first = next(iter(events))
        assert first.type == "start"
    assert closed.wait(20)
    result = events.result()
    assert result.stop_reason is StopReason.ABORTED


async def test_async_twins(client, fake_upstream) -> None:
    fake_upstream.enqueue(Reply("async hello"), Reply("async done"), Reply("x y"))
    events = [event async for event in aiipython.astream(FAKE, "hi", client=client)]
    assert types(events) == ["start", "text_start", "text_delta", "text_delta", "text_end", "done"]
    assert events[-1].message.text == "async hello"
    assert (await aiipython.acomplete(FAKE, "hi", client=client)).text == "async done"
    assert (await aiipython.astream_simple(FAKE, "hi", client=client).result()).text == "x y"
    await client.aclose()


async def test_async_leaving_early_closes_the_upstream_connection(client, fake_upstream) -> None:
    closed = threading.Event()
    fake_upstream.enqueue(Reply("one two three", closed=closed))
    async with aiipython.astream(FAKE, "hi", client=client) as events:
        async for event in events:
            if event.type == "text_delta":
                break
    assert closed.wait(20)
    assert (await events.result()).stop_reason is StopReason.ABORTED
    await client.aclose()
