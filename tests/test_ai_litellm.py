"""The typed API on the LiteLLM backend, and backend parity: one canned upstream reply through pi
(the real gateway, provider ``fake``) and through LiteLLM (``openai/fake-model`` at the same
scripted upstream) gives the same events, text, tool calls and usage counts."""

from __future__ import annotations

import asyncio
import gc
import threading

import pytest
from conftest import FAKE, Reply

import aiipython
from aiipython import ErrorEvent, StopReason, ctx, user

pytestmark = pytest.mark.gateway
LITELLM = "openai/fake-model"


@pytest.fixture
def litellm_env(monkeypatch: pytest.MonkeyPatch, fake_upstream) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("OPENAI_API_KEY", "sk-litellm-test")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_upstream.base_url)


def _both(client, fake_upstream, reply: Reply, context):  # type: ignore[no-untyped-def]
    fake_upstream.enqueue(reply)
    on_pi = list(aiipython.stream(FAKE, context, client=client))
    fake_upstream.enqueue(reply)
    on_litellm = list(aiipython.stream(LITELLM, context, backend="litellm"))
    return on_pi, on_litellm


def _usage(message):  # type: ignore[no-untyped-def]
    u = message.usage
    return (u.input, u.output, u.cache_read, u.cache_write, u.total_tokens)


@pytest.mark.usefixtures("litellm_env")
@pytest.mark.parametrize("reply", [
    Reply("Hello big world", prompt_tokens=20, completion_tokens=8, cached_tokens=5),
    Reply("4", reasoning="two and two make four"),
    Reply("", tool_calls=[{"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}]),
], ids=["text", "thinking", "tool-call"])
def test_backend_parity(client, fake_upstream, reply: Reply) -> None:
    on_pi, on_litellm = _both(client, fake_upstream, reply, ctx(user("hi"), system="Be brief."))
    assert [e.type for e in on_litellm] == [e.type for e in on_pi]
    pi_done, litellm_done = on_pi[-1].message, on_litellm[-1].message
    assert litellm_done.text == pi_done.text
    assert litellm_done.thinking_text == pi_done.thinking_text
    assert [(c.id, c.name, c.arguments) for c in litellm_done.tool_calls] == \
        [(c.id, c.name, c.arguments) for c in pi_done.tool_calls]
    assert _usage(litellm_done) == _usage(pi_done)
    assert litellm_done.stop_reason == pi_done.stop_reason
    pi_sent, litellm_sent = fake_upstream.requests
    assert litellm_sent["messages"] == pi_sent["messages"]


@pytest.mark.usefixtures("litellm_env")
def test_litellm_complete(fake_upstream) -> None:
    fake_upstream.enqueue(Reply("sync"))
    reply = aiipython.complete(LITELLM, "hi", backend="litellm")
    assert (reply.text, reply.stop_reason, reply.usage.output) == ("sync", StopReason.STOP, 3)


@pytest.mark.usefixtures("litellm_env")
# LiteLLM's async path leaves an event loop and its socketpair unclosed for the GC to find
# (inside litellm, after our call returned); not a failure of this API.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_litellm_async_twins(fake_upstream) -> None:
    async def both() -> tuple[str, str]:
        first = await aiipython.acomplete(LITELLM, "hi", backend="litellm")
        second = await aiipython.astream(LITELLM, "hi", backend="litellm").result()
        return first.text, second.text

    fake_upstream.enqueue(Reply("async"), Reply("async stream"))
    assert asyncio.run(both()) == ("async", "async stream")
    gc.collect()  # LiteLLM's leaked loop is found here, under this test's filter, not in a later test


@pytest.mark.usefixtures("litellm_env")
def test_litellm_500_is_an_error_event_and_complete_raises(fake_upstream) -> None:
    fake_upstream.enqueue(Reply(status=500), Reply(status=500))
    (event,) = list(aiipython.stream(LITELLM, "hi", backend="litellm"))
    assert isinstance(event, ErrorEvent) and event.reason is StopReason.ERROR
    assert isinstance(event.exception, aiipython.UpstreamError)
    assert "sk-litellm-test" not in (event.error.error_message or "")
    with pytest.raises(aiipython.UpstreamError):
        aiipython.complete(LITELLM, "hi", backend="litellm")


@pytest.mark.usefixtures("litellm_env")
def test_content_filter_is_an_error_on_both_backends(client, fake_upstream) -> None:
    """One mapping (pi-ai's mapStopReason): finish_reason content_filter ends the stream with
    ``error`` and UpstreamError on pi and on LiteLLM alike, after the text that came."""
    finish = "content_filter"
    on_pi, on_litellm = _both(client, fake_upstream, Reply("half an answ", finish_reason=finish), "hi")
    kinds = [e.type for e in on_pi]
    assert [e.type for e in on_litellm] == kinds
    assert kinds[:3] == ["start", "text_start", "text_delta"] and kinds[-2:] == ["text_end", "error"]
    for last in (on_pi[-1], on_litellm[-1]):
        assert isinstance(last, ErrorEvent) and last.reason is StopReason.ERROR
        assert isinstance(last.exception, aiipython.UpstreamError)
        assert f"Provider finish_reason: {finish}" in (last.error.error_message or "")
        assert last.error.text == "half an answ"
    fake_upstream.enqueue(Reply("withheld", finish_reason="content_filter"))
    with pytest.raises(aiipython.UpstreamError, match="content_filter"):
        aiipython.complete(LITELLM, "hi", backend="litellm")


@pytest.mark.usefixtures("litellm_env")
def test_litellm_cost_unknown_is_not_zero(fake_upstream) -> None:
    """LiteLLM has no price for openai/fake-model: ``Cost(known=False)``, said in pi's JSON too;
    a model it prices has a known, non-zero cost."""
    import litellm

    fake_upstream.enqueue(Reply("free?", prompt_tokens=1000, completion_tokens=500))
    unpriced = aiipython.complete(LITELLM, "hi", backend="litellm").usage
    assert (unpriced.input, unpriced.output) == (1000, 500)
    assert unpriced.cost.known is False and unpriced.cost.total == 0.0
    assert unpriced.to_pi()["cost"]["known"] is False
    assert aiipython.Usage.model_validate(unpriced.to_pi()).cost.known is False  # round trip
    fake_upstream.enqueue(Reply("priced", prompt_tokens=1000, completion_tokens=500))
    priced = aiipython.complete("openai/gpt-4o-mini", "hi", backend="litellm").usage.cost
    price = litellm.model_cost["gpt-4o-mini"]
    assert priced.known is True and "known" not in priced.to_pi()  # pi's own shape
    assert priced.total == pytest.approx(1000 * price["input_cost_per_token"] + 500 * price["output_cost_per_token"])


@pytest.mark.usefixtures("litellm_env")
def test_litellm_breaking_out_closes_the_upstream_connection(fake_upstream) -> None:
    closed = threading.Event()
    fake_upstream.enqueue(Reply("one two three", closed=closed))
    for event in aiipython.stream(LITELLM, "hi", backend="litellm"):
        if event.type == "text_delta":
            break
    assert closed.wait(20), "the upstream still had its connection open"


@pytest.mark.usefixtures("litellm_env")
def test_litellm_tool_calling_over_two_turns(fake_upstream) -> None:
    """The seed's weather example on the LiteLLM backend: the same Context carries both turns."""
    from aiipython import Context, TextContent, Tool, ToolResultMessage, UserMessage

    fake_upstream.enqueue(Reply("", tool_calls=[{"id": "call_7", "name": "get_weather",
                                                 "arguments": {"location": "Tokyo"}}]),
                          Reply("It is 22°C and sunny in Tokyo."))
    weather = Tool(name="get_weather", description="Get current weather for a location",
                   parameters={"type": "object", "properties": {"location": {"type": "string"}},
                               "required": ["location"]})
    context = Context(messages=[UserMessage(content="What's the weather in Tokyo?")], tools=[weather])
    first = aiipython.complete(LITELLM, context, backend="litellm")
    (tc,) = first.tool_calls
    assert (tc.id, tc.name, tc.arguments, first.stop_reason) == \
        ("call_7", "get_weather", {"location": "Tokyo"}, StopReason.TOOL_USE)
    context.messages.append(first)
    context.messages.append(ToolResultMessage(tool_call_id=tc.id, tool_name=tc.name,
                                              content=[TextContent(text="22°C, sunny")]))
    assert aiipython.complete(LITELLM, context, backend="litellm").text == "It is 22°C and sunny in Tokyo."
    _, second = fake_upstream.requests
    assert [m["role"] for m in second["messages"]] == ["user", "assistant", "tool"]
    assert second["messages"][1]["tool_calls"][0]["id"] == "call_7"
    assert second["messages"][2]["tool_call_id"] == "call_7" and "22°C" in str(second["messages"][2]["content"])


@pytest.mark.usefixtures("litellm_env")
def test_litellm_image_from_a_local_file(fake_upstream, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import base64

    png = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
    path = tmp_path / "dot.png"
    path.write_bytes(png)
    fake_upstream.enqueue(Reply("a dot"))
    assert aiipython.complete(LITELLM, ctx(user("What is this?", images=[path])), backend="litellm").text == "a dot"
    parts = fake_upstream.requests[0]["messages"][0]["content"]
    assert parts[0] == {"type": "text", "text": "What is this?"}
    assert parts[1]["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(png).decode()
