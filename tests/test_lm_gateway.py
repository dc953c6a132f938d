"""PiGatewayLM against the real Node gateway and pi, with a scripted OpenAI upstream (issue 4).

pi knows the upstream as provider ``fake`` (tests/conftest.py). Every DSPy module below runs its
calls through PiGatewayLM -> gateway -> pi's openai-completions -> the fake upstream; assertions
read what the upstream received and what DSPy returned.
"""

from __future__ import annotations

import uuid
from typing import Any

import dspy
import pytest
from conftest import FAKE, Reply
from dspy.utils import exceptions as dx

from aiipython import PiGatewayLM

pytestmark = pytest.mark.gateway


def fields(**values: str) -> str:
    """A ChatAdapter reply: ``[[ ## name ## ]]`` sections then the completed marker."""
    body = "".join(f"[[ ## {name} ## ]]\n{value}\n\n" for name, value in values.items())
    return body + "[[ ## completed ## ]]"


@pytest.fixture(autouse=True)
def _dspy_state(tmp_path):
    dspy.configure_cache(enable_disk_cache=True, enable_memory_cache=True, disk_cache_dir=str(tmp_path / "cache"))
    with dspy.context(lm=None, adapter=None, track_usage=False):
        yield


@pytest.fixture
def lm(client) -> PiGatewayLM:
    return PiGatewayLM("pi/" + FAKE, client=client, cache=False, num_retries=0)


def roles(request: dict[str, Any]) -> list[str]:
    return [m["role"] for m in request["messages"]]


def test_capabilities_come_from_pi(lm):
    assert lm.model == "pi/fake/fake-model"
    assert lm.supports_function_calling is True
    assert lm.supports_reasoning is False  # models.json says reasoning: false


def test_predict(lm, fake_upstream):
    fake_upstream.enqueue(Reply(fields(answer="Paris")))
    with dspy.context(lm=lm):
        result = dspy.Predict("question -> answer")(question="Capital of France?")
    assert result.answer == "Paris"
    (sent,) = fake_upstream.requests
    assert sent["model"] == "fake-model"
    assert roles(sent) == ["system", "user"]
    assert "Capital of France?" in sent["messages"][1]["content"]


def test_chain_of_thought(lm, fake_upstream):
    fake_upstream.enqueue(Reply(fields(reasoning="2 and 2 make 4.", answer="4")))
    with dspy.context(lm=lm):
        result = dspy.ChainOfThought("question -> answer")(question="What is 2+2?")
    assert (result.reasoning, result.answer) == ("2 and 2 make 4.", "4")


def test_react_with_a_tool(lm, fake_upstream):
    seen: list[str] = []

    def get_weather(city: str) -> str:
        """Today's weather in a city."""
        seen.append(city)
        return f"sunny in {city}"

    fake_upstream.enqueue(
        Reply(fields(next_thought="Check the weather.", next_tool_name="get_weather",
                     next_tool_args='{"city": "Paris"}')),
        Reply(fields(next_thought="I know it.", next_tool_name="finish", next_tool_args="{}")),
        Reply(fields(reasoning="The tool said sunny.", answer="Sunny")),
    )
    with dspy.context(lm=lm):
        result = dspy.ReAct("question -> answer", tools=[get_weather], max_iters=3)(question="Weather in Paris?")
    assert result.answer == "Sunny"
    assert seen == ["Paris"]
    assert fake_upstream.calls == 3
    assert "sunny in Paris" in fake_upstream.requests[1]["messages"][-1]["content"]


def test_react_trims_its_trajectory_on_context_overflow(lm, fake_upstream):
    def get_weather(city: str) -> str:
        """Today's weather in a city."""
        return f"sunny in {city}"

    overflow = {"error": {"message": "This model's maximum context length is 32000 tokens. However, your messages "
                                     "resulted in 50000 tokens.", "type": "invalid_request_error",
                          "code": "context_length_exceeded"}}
    fake_upstream.enqueue(
        Reply(fields(next_thought="Paris.", next_tool_name="get_weather", next_tool_args='{"city": "Paris"}')),
        Reply(fields(next_thought="Rome.", next_tool_name="get_weather", next_tool_args='{"city": "Rome"}')),
        Reply(status=400, error_body=overflow),
        Reply(fields(next_thought="Done.", next_tool_name="finish", next_tool_args="{}")),
        Reply(fields(reasoning="r", answer="Sunny")),
    )
    with dspy.context(lm=lm):
        result = dspy.ReAct("question -> answer", tools=[get_weather], max_iters=4)(question="Weather?")
    assert result.answer == "Sunny"
    refused, retried = (request["messages"][-1]["content"] for request in fake_upstream.requests[2:4])
    assert "sunny in Paris" in refused and "sunny in Rome" in refused
    assert "sunny in Paris" not in retried and "sunny in Rome" in retried  # ReAct dropped the oldest step


def test_context_overflow_is_dspy_context_window_error(lm, fake_upstream):
    fake_upstream.enqueue(Reply(status=400, error_body={"error": {"message": "maximum context length exceeded",
                                                                  "code": "context_length_exceeded"}}))
    with pytest.raises(dx.ContextWindowExceededError) as info:
        lm("hi")
    assert not dx.is_retryable_lm_error(info.value)


def test_native_tool_calls_two_turns(lm, fake_upstream):
    def get_weather(city: str) -> str:
        """Today's weather in a city."""
        return f"sunny in {city}"

    class Agent(dspy.Signature):
        """Answer the question, calling tools when needed."""

        question: str = dspy.InputField()
        tools: list[dspy.Tool] = dspy.InputField()
        history: dspy.History = dspy.InputField()
        calls: dspy.ToolCalls = dspy.OutputField()
        answer: str = dspy.OutputField()

    tool = dspy.Tool(get_weather)
    fake_upstream.enqueue(
        Reply("", tool_calls=[{"id": "call_7", "name": "get_weather", "arguments": {"city": "Paris"}}]),
        Reply(fields(answer="It is sunny in Paris.")),
    )
    question = "Weather in Paris?"
    with dspy.context(lm=lm, adapter=dspy.ChatAdapter(use_native_function_calling=True)):
        agent = dspy.Predict(Agent)
        first = agent(question=question, tools=[tool], history=dspy.History(messages=[]))
        (call,) = first.calls.tool_calls
        assert (call.id, call.name, call.args) == ("call_7", "get_weather", {"city": "Paris"})
        results = dspy.ToolCallResults.from_tool_calls_and_values(first.calls, [call.execute(functions=[tool])])
        turn = {"question": question, "calls": first.calls.model_copy(update={"tool_call_results": results})}
        second = agent(question=question, tools=[tool], history=dspy.History(messages=[turn]))
    assert second.answer == "It is sunny in Paris."
    one, two = fake_upstream.requests
    assert one["tools"][0]["function"]["name"] == "get_weather"
    assert roles(two)[:4] == ["system", "user", "assistant", "tool"]
    assert two["messages"][2]["tool_calls"][0]["id"] == "call_7"
    assert two["messages"][3] == {"role": "tool", "tool_call_id": "call_7", "content": "sunny in Paris"}


def test_thinking_comes_back_as_reasoning_content(lm, fake_upstream):
    fake_upstream.enqueue(Reply("done", reasoning="let me think"))
    (output,) = lm("hi")
    assert output == {"text": "done", "reasoning_content": "let me think"}


async def test_streamify_chunks_before_the_prediction(lm, client, fake_upstream):
    answer = "Paris is the capital and largest city of France."
    fake_upstream.enqueue(Reply(fields(answer=answer)))
    program = dspy.streamify(dspy.Predict("question -> answer"),
                             stream_listeners=[dspy.streaming.StreamListener(signature_field_name="answer")])
    seen: list[Any] = []
    with dspy.context(lm=lm):
        async for item in program(question="Capital of France?"):
            seen.append(item)
    chunks = [s for s in seen if isinstance(s, dspy.streaming.StreamResponse)]
    assert len(chunks) > 1
    assert isinstance(seen[-1], dspy.Prediction)
    assert all(isinstance(s, dspy.streaming.StreamResponse) for s in seen[:-1])
    assert "".join(c.chunk for c in chunks).strip() == answer
    assert seen[-1].answer == answer
    assert fake_upstream.requests[0]["stream"] is True
    await client.aclose()  # this loop's connections (the client keeps one pool per loop)


async def test_acall(lm, client, fake_upstream):
    fake_upstream.enqueue(Reply(fields(answer="4")))
    with dspy.context(lm=lm):
        result = await dspy.Predict("question -> answer").acall(question="2+2?")
    assert result.answer == "4"
    await client.aclose()  # this loop's connections (the client keeps one pool per loop)


def test_evaluate_with_eight_threads(lm, fake_upstream):
    fake_upstream.enqueue(*[Reply(fields(answer="42")) for _ in range(16)])
    examples = [dspy.Example(question=f"Question {i}?", answer="42").with_inputs("question") for i in range(16)]
    with dspy.context(lm=lm):
        evaluate = dspy.Evaluate(devset=examples, num_threads=8, display_progress=False, provide_traceback=True)
        result = evaluate(dspy.Predict("question -> answer"),
                          metric=lambda ex, pred, trace=None: ex.answer == pred.answer)
    assert result.score == 100.0
    assert fake_upstream.calls == 16
    assert sorted(r["messages"][1]["content"].split("Question ")[1].split("?")[0] for r in fake_upstream.requests) == \
        sorted(str(i) for i in range(16))


def test_usage_is_the_upstream_count_once(lm, fake_upstream):
    fake_upstream.enqueue(Reply(fields(answer="ok"), prompt_tokens=120, completion_tokens=9, cached_tokens=100))
    with dspy.context(lm=lm, track_usage=True):
        result = dspy.Predict("question -> answer")(question="Count me")
    usage = result.get_lm_usage()["pi/fake/fake-model"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (120, 9, 129)
    assert usage["prompt_tokens_details"]["cached_tokens"] == 100
    response = lm.history[-1]["response"]
    response = response[0] if isinstance(response, (list, tuple)) else response
    assert response.provider_data["stop_reason"] == "stop"
    # models.json prices $1/M input, $2/M output, $0.5/M cache read.
    assert response.provider_data["cost_usd"] == pytest.approx((20 * 1.0 + 9 * 2.0 + 100 * 0.5) / 1e6)


def test_history_cost_is_pis_price_in_dollars_and_usage_summary_totals_it(client, fake_upstream):
    import aiipython

    aiipython.reset_usage()
    cached = PiGatewayLM("pi/" + FAKE, client=client, cache=True)
    question = f"Price me {uuid.uuid4()}"
    fake_upstream.enqueue(Reply(fields(answer="one"), prompt_tokens=120, completion_tokens=9, cached_tokens=100),
                          Reply(fields(answer="two"), prompt_tokens=10, completion_tokens=5))
    with dspy.context(lm=cached):
        dspy.Predict("question -> answer")(question=question)
        dspy.Predict("question -> answer")(question=question)  # DSPy's cache: not billed again
        dspy.Predict("question -> answer")(question=question + " again")
    first, hit, second = cached.history[-3:]
    # models.json prices $1/M input, $2/M output, $0.5/M cache read.
    assert first["cost"] == pytest.approx((20 * 1.0 + 9 * 2.0 + 100 * 0.5) / 1e6)
    assert first["cost_details"] == {"kind": "reported", "currency": "USD", "source": "pi"}
    assert hit["cost"] == first["cost"] and hit["usage"] == {}  # as dspy.LM: a hit keeps its price
    assert second["cost"] == pytest.approx((10 * 1.0 + 5 * 2.0) / 1e6)
    summary = aiipython.usage_summary()
    assert (summary["calls"], summary["cached_calls"], summary["unpriced_calls"]) == (2, 1, 0)
    assert summary["cost_usd"] == pytest.approx(first["cost"] + second["cost"])
    assert (summary["input_tokens"], summary["output_tokens"]) == (130, 14)
    assert set(summary["by_model"]) == {"pi/fake/fake-model"}
    aiipython.reset_usage()
    assert aiipython.usage_summary()["calls"] == 0 and aiipython.usage_summary()["by_model"] == {}


def test_streamed_call_has_its_cost_in_history(lm, fake_upstream):
    fake_upstream.enqueue(Reply(fields(answer="streamed"), prompt_tokens=10, completion_tokens=5))
    program = dspy.streamify(dspy.Predict("question -> answer"),
                             stream_listeners=[dspy.streaming.StreamListener("answer")], async_streaming=False)
    with dspy.context(lm=lm):
        outputs = list(program(question="Stream a price"))
    assert outputs[-1].answer == "streamed"
    assert lm.history[-1]["cost"] == pytest.approx((10 * 1.0 + 5 * 2.0) / 1e6)


def test_cache_hit_does_not_reach_the_upstream(client, fake_upstream):
    cached = PiGatewayLM("pi/" + FAKE, client=client, cache=True)
    question = f"Cache me {uuid.uuid4()}"
    fake_upstream.enqueue(Reply(fields(answer="first")), Reply(fields(answer="second")))
    with dspy.context(lm=cached):
        one = dspy.Predict("question -> answer")(question=question)
        two = dspy.Predict("question -> answer")(question=question)
    assert one.answer == two.answer == "first"
    assert fake_upstream.calls == 1


def test_rate_limit_once_then_success_is_retried_by_dspy(client, fake_upstream):
    retrying = PiGatewayLM("pi/" + FAKE, client=client, cache=False, num_retries=2)
    fake_upstream.enqueue(
        Reply(status=429, headers={"Retry-After": "0"},
              error_body={"error": {"message": "Rate limit reached", "type": "requests",
                                    "code": "rate_limit_exceeded"}}),
        Reply(fields(answer="after retry")),
    )
    with dspy.context(lm=retrying):
        result = dspy.Predict("question -> answer")(question="Retry me")
    assert result.answer == "after retry"
    assert fake_upstream.calls == 2


def test_rate_limit_without_retries_is_dspy_rate_limit_error(lm, fake_upstream):
    fake_upstream.enqueue(Reply(status=429, headers={"Retry-After": "3"}))
    with pytest.raises(dx.LMRateLimitError) as info:
        lm("hi")
    assert info.value.retry_after == 3.0
    assert "sk-test-secret-key-123" not in str(info.value)


def test_upstream_500_is_a_retryable_server_error(lm, fake_upstream):
    fake_upstream.enqueue(Reply(status=500))
    with pytest.raises(dx.LMServerError) as info:
        lm("hi")
    assert dx.is_retryable_lm_error(info.value)


def test_unknown_model_is_unsupported_model(client, fake_upstream):
    with pytest.raises(dx.LMUnsupportedModelError, match="nope"):
        PiGatewayLM("pi/fake/nope", client=client, cache=False, num_retries=0)("hi")
    assert fake_upstream.calls == 0


def test_native_options_reach_the_upstream(lm, fake_upstream):
    fake_upstream.enqueue(Reply('{"a": 1}'))
    lm("hi", top_p=0.5, seed=7, presence_penalty=0.25, frequency_penalty=-0.5, response_format={"type": "json_object"})
    (sent,) = fake_upstream.requests
    assert (sent["top_p"], sent["seed"], sent["presence_penalty"], sent["frequency_penalty"]) == (0.5, 7, 0.25, -0.5)
    assert sent["response_format"] == {"type": "json_object"}


def test_json_adapter_gets_real_structured_output(lm, fake_upstream):
    """DSPy's JSONAdapter sees response_format (and a response schema) in the model's params, so
    the upstream receives a json_schema response_format built from the signature."""
    assert "response_format" in lm.supported_params and lm.supports_response_schema
    fake_upstream.enqueue(Reply('{"answer": "4"}'))
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        result = dspy.Predict("question -> answer")(question="2+2?")
    assert result.answer == "4"
    (sent,) = fake_upstream.requests
    fmt = sent["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["schema"]["properties"].keys() == {"answer"}


def test_an_option_the_models_api_cannot_carry_is_refused_before_the_gateway(client, fake_upstream):
    echo = PiGatewayLM("pi/echo/echo", client=client, cache=False, num_retries=0)
    assert "response_format" not in echo.supported_params and not echo.supports_response_schema
    with pytest.raises(dx.LMUnsupportedFeatureError, match="response_format") as info:
        echo("hi", response_format={"type": "json_object"})
    assert "aiipython-echo" in str(info.value)  # the API that lacks it
    assert echo("hi", seed=7, top_p=0.5) == ["hi"]  # what it does carry goes through
    assert fake_upstream.calls == 0


def test_options_reach_the_upstream(lm, fake_upstream):
    fake_upstream.enqueue(Reply("ok"))
    lm("hi", temperature=0.25, max_tokens=77, stop=["STOP"])
    (sent,) = fake_upstream.requests
    assert (sent["temperature"], sent["max_tokens"], sent["stop"]) == (0.25, 77, ["STOP"])
