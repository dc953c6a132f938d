"""PiGatewayLM without a gateway: request/response/stream conversion and error mapping.

A FakeClient (tests/fake_client.py, the LMClient protocol) stands in for the gateway; DSPy runs for real.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import dspy
import pytest
from dspy import lm15
from dspy.utils import exceptions as dx
from fake_client import COMPLETIONS_OPTIONS, MODEL_INFO, FakeClient, Frame

from aiipython import _errors as E
from aiipython._gateway_options import GatewayOptions
from aiipython._lm import AsyncPiGatewayEngine, PiGatewayEngine, PiGatewayLM
from aiipython._lm_convert import request_body, response_from_message


def message(*content: dict[str, Any], stop: str = "stop", usage: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "role": "assistant", "content": list(content), "api": "openai-completions", "provider": "fake",
        "model": "m", "stopReason": stop, "timestamp": 1,
        "usage": usage or {"input": 10, "output": 5, "cacheRead": 3, "cacheWrite": 2, "totalTokens": 20,
                           "cost": {"input": 0.001, "output": 0.002, "cacheRead": 0, "cacheWrite": 0, "total": 0.003}},
    }


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def chat_frames(answer: str) -> list[Frame]:
    final = message(text(answer))
    frames = [Frame("start", {"model": {"provider": "fake", "id": "m"}}), Frame("text_start", {"contentIndex": 0})]
    frames += [Frame("text_delta", {"contentIndex": 0, "delta": answer[i:i + 7]}) for i in range(0, len(answer), 7)]
    frames += [Frame("text_end", {"contentIndex": 0}),
               Frame("done", {"reason": "stop", "message": final, "duration_ms": 1.0})]
    return frames


@pytest.fixture(autouse=True)
def _fresh_dspy(tmp_path):
    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=True, disk_cache_dir=str(tmp_path))
    with dspy.context(lm=None, adapter=None, track_usage=False):
        yield


@pytest.fixture
def client() -> FakeClient:
    return FakeClient()


def make(client: FakeClient, model: str = "pi/fake/m", **kwargs: Any) -> PiGatewayLM:
    kwargs.setdefault("cache", False)
    kwargs.setdefault("num_retries", 0)
    return PiGatewayLM(model, client=client, **kwargs)


def req(*messages: Any, **config: Any) -> lm15.Request:
    tools = config.pop("tools", ())
    system = config.pop("system", None)
    return lm15.Request(model="pi/fake/m", messages=messages or (lm15.Message.user("hi"),), system=system,
                        tools=tools, config=lm15.Config(**config))


# ---------------------------------------------------------------------------------------- requests


def test_request_messages_tools_and_options():
    image = lm15.ImagePart(data="aGVsbG8=", media_type="image/png")
    request = req(
        lm15.Message.user([lm15.TextPart("look"), image]),
        lm15.Message.assistant([lm15.ThinkingPart("hmm"), lm15.TextPart("calling"),
                                lm15.ToolCallPart(id="c1", name="get_weather", input={"city": "Paris"})]),
        lm15.Message.tool("c1", "sunny"),
        lm15.Message.developer("be brief"),
        system="You are terse.",
        tools=(lm15.FunctionTool(name="get_weather", description="Weather", parameters={"type": "object"}),),
        temperature=0.2, max_tokens=64, stop=("END",), tool_choice=lm15.ToolChoice(mode="required"),
        reasoning=lm15.Reasoning(effort="high"),
    )
    body = request_body(request)
    assert body["model"] == "fake/m"
    assert body["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": [{"type": "text", "text": "look"},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,aGVsbG8="}}]},
        {"role": "assistant", "content": "calling", "reasoning_content": "hmm",
         "tool_calls": [{"id": "c1", "type": "function",
                         "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "developer", "content": "be brief"},
    ]
    assert body["tools"] == [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
                                                               "parameters": {"type": "object"}}}]
    assert body["options"] == {"temperature": 0.2, "max_tokens": 64, "stop": ["END"], "tool_choice": "required",
                               "reasoning": "high"}


@pytest.mark.parametrize("effort", ["off", "xhigh", "max"])
def test_every_lm15_effort_goes_to_the_gateway_verbatim(effort):
    # The gateway checks it against the model's /models thinking_levels (tests/test_reasoning_levels.py).
    assert request_body(req(reasoning=lm15.Reasoning(effort=effort)))["options"] == {"reasoning": effort}


def test_request_names_one_required_tool():
    tool = lm15.FunctionTool(name="f")
    body = request_body(req(tools=(tool,), tool_choice=lm15.ToolChoice(mode="required", allowed=("f",))))
    assert body["options"]["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert "options" not in request_body(req())


@pytest.mark.parametrize(
    ("request_", "feature"),
    [
        (req(top_k=3), "config.top_k"),
        (req(extensions={"logit_bias": {}}), "config.extensions"),
        (req(reasoning=lm15.Reasoning(effort="low", thinking_budget=100)), "config.reasoning.thinking_budget"),
        (req(lm15.Message.user([lm15.ImagePart(file_id="file-1")])), "messages[0].parts[0]"),
        (req(lm15.Message.user([lm15.AudioPart(data="AAAA")])), "messages[0].parts[0]"),
        (req(lm15.Message.user("q"), lm15.Message.assistant("a"),
             lm15.Message.tool("c1", "boom", is_error=True)), "messages[2].parts[0].is_error"),
        (req(tools=(lm15.BuiltinTool(name="web_search"),)), "tools[0]"),
    ],
)
def test_request_refuses_what_it_cannot_carry(request_, feature):
    with pytest.raises(lm15.UnsupportedFeatureError) as info:
        request_body(request_)
    assert info.value.feature == feature
    assert feature in str(info.value)


SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}


def test_native_options_go_to_the_gateway_where_the_model_carries_them():
    tool = lm15.FunctionTool(name="f")
    body = request_body(req(top_p=0.5, seed=7, presence_penalty=0.1, frequency_penalty=-0.2, user_id="u1",
                            response_format={"type": "json_schema", "schema": SCHEMA, "name": "qa", "strict": True},
                            tools=(tool,), tool_choice=lm15.ToolChoice(parallel=False)),
                        model_options=COMPLETIONS_OPTIONS, api="openai-completions")
    assert body["options"] == {
        "top_p": 0.5, "seed": 7, "presence_penalty": 0.1, "frequency_penalty": -0.2, "user": "u1",
        "response_format": {"type": "json_schema", "json_schema": {"name": "qa", "schema": SCHEMA, "strict": True}},
        "parallel_tool_calls": False, "tool_choice": "auto"}
    json_mode = request_body(req(response_format={"type": "json_object"}), model_options=COMPLETIONS_OPTIONS)
    assert json_mode["options"] == {"response_format": {"type": "json_object"}}
    unnamed = request_body(req(response_format={"type": "json_schema", "schema": SCHEMA}))  # options unknown: sent
    assert unnamed["options"]["response_format"] == {"type": "json_schema",
                                                     "json_schema": {"name": "response", "schema": SCHEMA}}


ANTHROPIC_OPTIONS = ["temperature", "max_tokens", "tool_choice", "session_id", "timeout_ms", "reasoning", "stop",
                     "top_p", "user", "parallel_tool_calls"]


@pytest.mark.parametrize(("request_", "feature"), [
    (req(seed=1), "config.seed"),
    (req(presence_penalty=0.5), "config.presence_penalty"),
    (req(response_format={"type": "json_object"}), "config.response_format"),
])
def test_a_native_option_the_models_api_lacks_is_refused_naming_the_api(request_, feature):
    with pytest.raises(lm15.UnsupportedFeatureError) as info:
        request_body(request_, model_options=ANTHROPIC_OPTIONS, api="anthropic-messages")
    assert info.value.feature == feature
    assert "anthropic-messages" in str(info.value) and feature.split(".")[1] in str(info.value)


def test_native_options_through_dspy(client):
    lm = make(client)
    client.replies.append(message(text("ok")))
    lm("hi", top_p=0.5, seed=3, response_format={"type": "json_object"})
    (call,) = client.calls
    assert call["options"] == {"top_p": 0.5, "seed": 3, "response_format": {"type": "json_object"}}
    lm_plain = make(client, "fake/plain")  # PLAIN_INFO: an API without seed
    with pytest.raises(dx.LMUnsupportedFeatureError, match="seed"):
        lm_plain("hi", seed=3)
    assert len(client.calls) == 1  # refused before anything was sent


# --------------------------------------------------------------------------------------- responses


def test_response_parts_usage_and_provider_data():
    msg = message({"type": "thinking", "thinking": "let me think"}, text("It is sunny."),
                  {"type": "toolCall", "id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}},
                  stop="toolUse")
    response = response_from_message(msg, model="fake/m", duration_ms=3.0)
    assert [type(p) for p in response.message.parts] == [lm15.ThinkingPart, lm15.TextPart, lm15.ToolCallPart]
    assert response.message.parts[2] == lm15.ToolCallPart(id="call_1", name="get_weather", input={"city": "Paris"})
    assert response.finish_reason == "tool_call"
    assert response.usage == lm15.Usage(input_tokens=15, output_tokens=5, total_tokens=20,
                                        cache_read_tokens=3, cache_write_tokens=2)
    assert response.provider_data["stop_reason"] == "toolUse"
    assert response.provider_data["cost_usd"] == 0.003
    assert response.model == "fake/m"


@pytest.mark.parametrize(("stop", "finish"), [("stop", "stop"), ("length", "length"), ("toolUse", "tool_call")])
def test_stop_reasons(stop, finish):
    assert response_from_message(message(text("x"), stop=stop), model="fake/m").finish_reason == finish


def test_error_stop_reason_in_a_reply_is_a_protocol_violation():
    with pytest.raises(lm15.ProviderError, match="stopReason 'error'"):
        response_from_message(message(text(""), stop="error"), model="fake/m")


def test_predict_through_engine_records_usage_once(client):
    client.replies.append(message(text("[[ ## answer ## ]]\nParis\n\n[[ ## completed ## ]]")))
    lm = make(client)
    with dspy.context(lm=lm, track_usage=True):
        result = dspy.Predict("question -> answer")(question="Capital of France?")
    assert result.answer == "Paris"
    usage = result.get_lm_usage()["pi/fake/m"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (15, 5, 20)
    assert usage["prompt_tokens_details"]["cached_tokens"] == 3
    assert client.calls[0]["model"] == "fake/m"
    assert client.calls[0]["messages"][0]["role"] == "system"
    entry = lm.history[-1]
    response = entry["response"]
    response = response[0] if isinstance(response, (list, tuple)) else response
    assert response.provider_data["cost_usd"] == 0.003


def test_cache_hit_does_not_call_the_gateway_again(client):
    client.replies.append(message(text("hello")))
    lm = make(client, cache=True)
    assert lm("same question") == ["hello"]
    assert lm("same question") == ["hello"]
    assert len(client.calls) == 1


# ------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("ours", "theirs", "retryable"),
    [
        (E.RateLimitError("slow down", status=429, retry_after=0.0), dx.LMRateLimitError, True),
        (E.UpstreamError("upstream 500", status=502), dx.LMServerError, True),
        (E.UpstreamTimeoutError("too slow", status=504), dx.LMTimeoutError, True),
        (E.GatewayExitedError("gateway died"), dx.LMTransportError, True),
        (E.ContextWindowExceededError("too long", status=400), dx.ContextWindowExceededError, False),
        (E.UpstreamAuthError("key refused", status=502), dx.LMAuthError, False),
        (E.ProviderNotConfiguredError("no key for fake", status=403), dx.LMNotConfiguredError, False),
        (E.ModelNotFoundError("unknown model", status=404), dx.LMUnsupportedModelError, False),
        (E.InvalidRequestError("bad", status=400), dx.LMInvalidRequestError, False),
        (E.AuthenticationError("wrong gateway token", status=401), dx.LMConfigurationError, False),
        (E.NodeNotFoundError("no node"), dx.LMConfigurationError, False),
        (E.GatewayProtocolError("garbage"), dx.LMProviderError, False),
    ],
)
def test_gateway_errors_become_dspy_errors(client, ours, theirs, retryable):
    client.replies.append(ours)
    lm = make(client)
    with pytest.raises(theirs) as info:
        lm("hi")
    assert dx.is_retryable_lm_error(info.value) is retryable
    assert info.value.__cause__.__cause__ is ours  # dspy error <- lm15 error <- ours
    assert ours.message in str(info.value)


def test_rate_limit_is_retried_with_retry_after(client):
    client.replies += [E.RateLimitError("slow down", status=429, retry_after=0.0), message(text("ok"))]
    lm = make(client, num_retries=2)
    assert lm("hi") == ["ok"]
    assert len(client.calls) == 2


def test_context_window_error_lets_react_trim():
    err = E.ContextWindowExceededError("too long", status=400)
    fake = FakeClient(replies=[err])
    with pytest.raises(dx.ContextWindowExceededError):
        make(fake)("hi")


# ---------------------------------------------------------------------------------------- streaming


def test_stream_events_assemble_like_complete(client):
    final = message({"type": "thinking", "thinking": "ab"}, text("Hi!"),
                    {"type": "toolCall", "id": "c9", "name": "f", "arguments": {"x": 1}}, stop="toolUse")
    client.streams.append([
        Frame("start", {"model": {"provider": "fake", "id": "m"}}),
        Frame("thinking_start", {"contentIndex": 0}), Frame("thinking_delta", {"contentIndex": 0, "delta": "a"}),
        Frame("thinking_delta", {"contentIndex": 0, "delta": "b"}), Frame("thinking_end", {"contentIndex": 0}),
        Frame("text_delta", {"contentIndex": 1, "delta": "Hi"}), Frame("text_delta", {"contentIndex": 1, "delta": "!"}),
        Frame("toolcall_start", {"contentIndex": 2, "id": "c9", "name": "f"}),
        Frame("toolcall_delta", {"contentIndex": 2, "delta": '{"x": '}),
        Frame("toolcall_delta", {"contentIndex": 2, "delta": "1}"}),
        Frame("toolcall_end", {"contentIndex": 2, "toolCall": {"type": "toolCall", "id": "c9", "name": "f",
                                                                "arguments": {"x": 1}}}),
        Frame("done", {"reason": "toolUse", "message": final, "duration_ms": 4.0}),
    ])
    engine = PiGatewayEngine("pi/fake/m", target=GatewayOptions(client=client).target())
    request = req()
    events = list(engine.stream(request))
    assert [e.type for e in events].count("start") == 1 and events[-1].type == "end"
    from dspy._vendor.lm15.result import StreamAccumulator

    accumulator = StreamAccumulator(request)
    for event in events:
        accumulator.push(event)
    assembled = accumulator.response()
    expected = response_from_message(final, model="fake/m", duration_ms=4.0)
    assert assembled.message == expected.message
    assert assembled.usage == expected.usage
    assert assembled.finish_reason == "tool_call"


def test_stream_error_is_mapped(client):
    def broken():
        yield Frame("start", {"model": {"provider": "fake", "id": "m"}})
        raise E.UpstreamError("upstream died", status=502)

    client.streams.append(broken())
    with pytest.raises(lm15.ServerError, match="upstream died"):
        list(PiGatewayEngine("pi/fake/m", target=GatewayOptions(client=client).target()).stream(req()))


def test_unknown_stream_event_is_refused(client):
    client.streams.append([Frame("start", {}), Frame("surprise", {})])
    with pytest.raises(lm15.ProviderError, match="surprise"):
        list(PiGatewayEngine("pi/fake/m", target=GatewayOptions(client=client).target()).stream(req()))


@pytest.mark.parametrize("is_async", [False, True])
async def test_streamify_chunks_arrive_before_the_prediction(client, is_async):
    answer = "[[ ## answer ## ]]\nThe capital of France is Paris.\n\n[[ ## completed ## ]]"
    client.streams.append(chat_frames(answer))
    lm = make(client)
    program = dspy.streamify(dspy.Predict("question -> answer"), is_async_program=is_async,
                             stream_listeners=[dspy.streaming.StreamListener(signature_field_name="answer")])
    seen: list[Any] = []
    with dspy.context(lm=lm):
        async for item in program(question="Capital of France?"):
            seen.append(item)
    chunks = [s for s in seen if isinstance(s, dspy.streaming.StreamResponse)]
    assert chunks and isinstance(seen[-1], dspy.Prediction)
    assert seen.index(chunks[0]) < len(seen) - 1
    assert "".join(c.chunk for c in chunks).strip() == "The capital of France is Paris."
    assert seen[-1].answer == "The capital of France is Paris."
    assert client.calls[0]["kind"] == ("astream" if is_async else "stream")


async def test_acall_uses_the_async_engine(client):
    client.replies.append(message(text("[[ ## answer ## ]]\n4\n\n[[ ## completed ## ]]")))
    with dspy.context(lm=make(client)):
        result = await dspy.Predict("question -> answer").acall(question="2+2?")
    assert result.answer == "4"


# ------------------------------------------------------------------------------- capabilities, state


def test_capabilities_come_from_the_gateway_model_list(client):
    assert make(client).supports_function_calling is True
    assert make(client).supports_reasoning is True
    assert make(client, "fake/plain").supports_reasoning is False
    assert make(client, "fake/unknown").supports_function_calling is False
    assert "reasoning_effort" in make(client).supported_params
    native = {"top_p", "seed", "presence_penalty", "frequency_penalty", "response_format"}
    assert native <= make(client).supported_params
    assert make(client).supports_response_schema is True
    plain = make(client, "fake/plain")
    assert "seed" not in plain.supported_params and "response_format" not in plain.supported_params
    assert plain.supports_response_schema is False


def test_model_info_given_skips_the_lookup(client):
    lm = make(client, model_info=MODEL_INFO)
    assert lm.supports_reasoning and client.list_calls == 0


def test_native_tool_calls_two_turns(client):
    client.replies += [
        message({"type": "toolCall", "id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}},
                stop="toolUse"),
        message(text("[[ ## answer ## ]]\nSunny in Paris.\n\n[[ ## completed ## ]]")),
    ]

    def get_weather(city: str) -> str:
        """Weather for a city."""
        return f"sunny in {city}"

    class Plan(dspy.Signature):
        question: str = dspy.InputField()
        tools: list[dspy.Tool] = dspy.InputField()
        calls: dspy.ToolCalls = dspy.OutputField()

    tool = dspy.Tool(get_weather)
    with dspy.context(lm=make(client), adapter=dspy.ChatAdapter(use_native_function_calling=True)):
        first = dspy.Predict(Plan)(question="Weather in Paris?", tools=[tool])
        assert first.calls.tool_calls[0].name == "get_weather"
        assert first.calls.tool_calls[0].args == {"city": "Paris"}
        observation = first.calls.tool_calls[0].execute(functions=[tool])
        second = dspy.Predict("question, observation -> answer")(question="Weather in Paris?", observation=observation)
    assert second.answer == "Sunny in Paris."
    assert client.calls[0]["tools"][0]["function"]["name"] == "get_weather"
    assert "tools" not in client.calls[1] or client.calls[1]["tools"] is None


def test_native_reasoning_sends_the_thinking_level(client):
    client.replies.append(message({"type": "thinking", "thinking": "2 and 2"},
                                  text("[[ ## answer ## ]]\n4\n\n[[ ## completed ## ]]")))
    with dspy.context(lm=make(client)):
        result = dspy.ChainOfThought("question -> answer", rationale_field_type=dspy.Reasoning)(question="2+2?")
    assert client.calls[0]["options"] == {"reasoning": "low"}
    assert result.reasoning.content == "2 and 2"


def test_gpt5_names_are_not_held_to_dspy_openai_rules(client):
    client.models = [{**MODEL_INFO, "provider": "openai", "id": "gpt-5.2", "api": "openai-responses"}]
    lm = make(client, "pi/openai/gpt-5.2", temperature=0.3, max_tokens=500)
    assert lm.kwargs["max_tokens"] == 500 and "max_completion_tokens" not in lm.kwargs
    client.replies.append(message(text("[[ ## reasoning ## ]]\nr\n\n[[ ## answer ## ]]\n4\n\n[[ ## completed ## ]]")))
    with dspy.context(lm=lm):
        result = dspy.ChainOfThought("question -> answer", rationale_field_type=dspy.Reasoning)(question="2+2?")
    # DSPy turns native reasoning off for any model string containing "gpt-5" (a LiteLLM caveat):
    # the reasoning then comes back as an ordinary output field.
    assert "reasoning" not in client.calls[0]["options"]
    assert client.calls[0]["options"] == {"temperature": 0.3, "max_tokens": 500}
    assert result.answer == "4"
    state = lm.dump_state()
    assert state["max_tokens"] == 500
    assert PiGatewayLM.load_state(state, allow_custom_lm_class=True).kwargs["max_tokens"] == 500


def test_model_names():
    assert PiGatewayLM("fake/m", client=FakeClient()).model == "pi/fake/m"
    assert PiGatewayLM("pi/openrouter/openai/gpt-4o", client=FakeClient()).model == "pi/openrouter/openai/gpt-4o"
    with pytest.raises(E.ConfigurationError, match="pi/<provider>/<id>"):
        PiGatewayLM("gpt-4o", client=FakeClient())
    with pytest.raises(E.ConfigurationError):
        PiGatewayLM("fake/m", client=FakeClient(), gateway_url="http://127.0.0.1:1", gateway_token="t")


def test_client_settings_are_refused(client):
    with pytest.raises(ValueError, match="api_key"):
        make(client, api_key="sk-secret")


def test_dump_and_load_state(client, tmp_path):
    lm = make(client, temperature=0.1, gateway_timeout=30)
    state = lm.dump_state()
    assert state["engine"]["class"] == "aiipython._lm:PiGatewayEngine"
    assert state["engine"]["state"] == {"model": "fake/m", "timeout": 30.0}
    assert not {"client", "gateway_url", "gateway_token", "api_key"} & set(state)
    loaded = PiGatewayLM.load_state(state, allow_custom_lm_class=True)
    assert isinstance(loaded, PiGatewayLM) and loaded.model == "pi/fake/m"
    assert isinstance(loaded.engine, PiGatewayEngine) and loaded.engine.timeout == 30.0
    assert isinstance(loaded._async_engine_spec, AsyncPiGatewayEngine)
    assert loaded.kwargs["temperature"] == 0.1

    program = dspy.Predict("question -> answer")
    program.lm = lm
    path = tmp_path / "program.json"
    program.save(path)
    restored = dspy.Predict("question -> answer")
    restored.load(path, allow_unsafe_lm_state=True)
    assert isinstance(restored.lm, PiGatewayLM) and restored.lm.model == "pi/fake/m"


def test_timeout_reaches_the_gateway(client):
    client.replies.append(message(text("ok")))
    make(client, gateway_timeout=1.5)("hi")
    assert client.calls[0]["options"] == {"timeout_ms": 1500}


def test_copy_keeps_the_gateway_and_rebinds_the_model(client):
    lm = make(client)
    same = lm.copy(temperature=0.9)
    assert same.engine is lm.engine and same.kwargs["temperature"] == 0.9
    other = lm.copy(model="fake/plain")
    assert other.model == "pi/fake/plain" and other.engine.model == "fake/plain"
    assert other.supports_reasoning is False and lm.supports_reasoning is True
    assert other.engine._target is lm.engine._target
    program = dspy.Predict("q -> a")
    program.lm = lm
    assert program.deepcopy().lm.engine is lm.engine
    assert copy.deepcopy(lm).engine is lm.engine


def test_no_litellm_import():
    import subprocess
    import sys

    code = "import sys, aiipython, aiipython._lm, aiipython._factory; assert 'litellm' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_fake_client_satisfies_the_client_protocol() -> None:
    """PiGatewayLM's ``client`` is typed as the LMClient protocol; mypy --strict checks that this
    file's fake (and, in src, PiGatewayClient) satisfy it, so the fake cannot drift from the real one."""
    pytest.importorskip("mypy")
    fake = Path(__file__).with_name("fake_client.py")
    out = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-error-summary", str(fake)],
                         capture_output=True, text=True, timeout=300, cwd=fake.parent.parent)
    assert out.returncode == 0, out.stdout + out.stderr


def test_bounded_schema_fits_the_budget_and_keeps_closed_fields():
    from aiipython._lm_convert import LOCAL_MAX_ITEMS, bounded_schema

    schema = {"type": "object", "required": ["a", "tags", "mood", "code"], "properties": {
        "a": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}},
        "mood": {"type": "string", "enum": ["x", "y"]}, "code": {"type": "string", "maxLength": 3},
        "n": {"type": "integer"}}}
    out = bounded_schema(schema, 512)
    slots = 1 + LOCAL_MAX_ITEMS
    assert out["properties"]["a"]["maxLength"] == (512 * 3 * 3 // 4) // slots
    assert out["properties"]["tags"]["maxItems"] == LOCAL_MAX_ITEMS
    assert out["properties"]["tags"]["items"]["maxLength"] == out["properties"]["a"]["maxLength"]
    assert out["properties"]["mood"] == {"type": "string", "enum": ["x", "y"]}
    assert out["properties"]["code"] == {"type": "string", "maxLength": 3}
    assert out["properties"]["n"] == {"type": "integer"} and out["required"] == schema["required"]
    assert "maxLength" not in schema["properties"]["a"]  # a copy


class _SlowListingClient(FakeClient):
    """``GET /models`` (the first backend choice) waits until the event loop has run another task."""

    __hash__ = object.__hash__  # the typed API caches its choice per client (a weak key)

    def __init__(self, loop_ran: Any, **kw: Any) -> None:
        super().__init__(**kw)
        self.loop_ran = loop_ran
        self.loop_was_free: list[bool] = []

    def list_models(self) -> dict[str, Any]:
        self.loop_was_free.append(self.loop_ran.wait(10))  # False: the loop was blocked by this call
        return super().list_models()


@pytest.mark.parametrize("twin", ["acomplete", "astream"])
async def test_the_async_twins_choose_the_backend_without_blocking_the_event_loop(twin: str) -> None:
    """The first call for a model reads the gateway's listing (and may start the gateway): on the
    event loop's own thread that would stall every other task for about a second."""
    import asyncio
    import threading

    import aiipython

    loop_ran = threading.Event()
    client = _SlowListingClient(loop_ran, replies=[message(text("done"))], streams=[chat_frames("done")])

    async def other_task() -> None:
        await asyncio.sleep(0)
        loop_ran.set()

    other = asyncio.create_task(other_task())
    if twin == "acomplete":
        reply = await aiipython.acomplete("fake/m", "hi", client=client)  # type: ignore[arg-type]
    else:
        reply = await aiipython.astream("fake/m", "hi", client=client).result()  # type: ignore[arg-type]
    await other
    assert reply.text == "done" and client.loop_was_free == [True]
