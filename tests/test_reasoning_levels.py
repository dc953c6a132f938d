"""Thinking levels have one owner: pi's per-model list in the gateway's ``/models``
(``thinking_levels``). ``max`` passes for a model that maps it and is refused, with the model's
list, for one that does not — through the typed API and through PiGatewayLM alike.

A real gateway and pi, on a scripted upstream that pi knows as provider ``think``: model ``deep``
maps ``xhigh`` and ``max`` (pi's ``thinkingLevelMap``), model ``plain`` reasons up to ``high``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dspy
import pytest
from conftest import GATEWAY_CACHE, Reply
from dspy.utils import exceptions as dx
from fake_upstream import FakeUpstream

import aiipython
from aiipython import PiGatewayClient, PiGatewayLM, SimpleStreamOptions, ThinkingLevel

pytestmark = pytest.mark.gateway

PLAIN_LEVELS = ["off", "minimal", "low", "medium", "high"]


def _model(model_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": model_id, "name": model_id, "reasoning": True, "input": ["text"], "contextWindow": 32000,
        "maxTokens": 4096, "cost": {"input": 1.0, "output": 2.0, "cacheRead": 0.0, "cacheWrite": 0.0},
        "compat": {"supportsStore": False, "supportsDeveloperRole": False, "supportsReasoningEffort": True,
                   "maxTokensField": "max_tokens"},
        **extra,
    }


@pytest.fixture(scope="module")
def think_client(session_tmp: Path, fake_upstream_session: FakeUpstream) -> Iterator[PiGatewayClient]:
    from aiipython._gateway import start_gateway
    from aiipython._settings import load_settings

    agent = session_tmp / "pi-agent-think"
    agent.mkdir(exist_ok=True)
    (agent / "models.json").write_text(json.dumps({"providers": {"think": {
        "baseUrl": fake_upstream_session.base_url, "api": "openai-completions", "apiKey": "sk-test-think-123",
        "models": [_model("deep", thinkingLevelMap={"xhigh": "xhigh", "max": "max"}), _model("plain")],
    }}}))
    gw = start_gateway(load_settings({"AIIPYTHON_CACHE_DIR": str(GATEWAY_CACHE), "AIIPYTHON_LOCAL_MODEL": "off",
                                      "PI_CODING_AGENT_DIR": str(agent), "AIIPYTHON_REQUEST_TIMEOUT": "30"}))
    client = PiGatewayClient(gateway=gw)
    yield client
    client.close()
    gw.close()


def test_the_levels_come_from_the_gateway(think_client) -> None:
    levels = {m["id"]: m["thinking_levels"] for m in think_client.list_models()["models"]
              if m["provider"] == "think"}
    assert levels == {"deep": [*PLAIN_LEVELS, "xhigh", "max"], "plain": PLAIN_LEVELS}
    assert aiipython.get_model("think/deep", client=think_client).thinking_levels[-1] == "max"


def test_max_passes_for_a_model_that_has_it(think_client, fake_upstream) -> None:
    fake_upstream.enqueue(Reply("deep thought", reasoning="hmm"))
    reply = aiipython.complete_simple("think/deep", "hi", SimpleStreamOptions(reasoning=ThinkingLevel.MAX),
                                      backend="pi", client=think_client)
    assert reply.text == "deep thought"
    (sent,) = fake_upstream.requests
    assert sent["reasoning_effort"] == "max"


def test_max_is_refused_with_the_models_list(think_client, fake_upstream) -> None:
    with pytest.raises(aiipython.InvalidRequestError) as caught:
        aiipython.quick("hi", "think/plain", reasoning="max", backend="pi", client=think_client)
    assert 'options.reasoning "max" is not supported by think/plain' in str(caught.value)
    assert json.dumps(PLAIN_LEVELS, separators=(",", ":")) in str(caught.value)
    assert fake_upstream.calls == 0


def test_dspy_reasoning_effort_max_follows_the_same_list(think_client, fake_upstream, tmp_path) -> None:
    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)
    fake_upstream.enqueue(Reply("[[ ## answer ## ]]\n4\n\n[[ ## completed ## ]]", reasoning="2 and 2"))
    deep = PiGatewayLM("pi/think/deep", client=think_client, cache=False, num_retries=0, reasoning_effort="max")
    with dspy.context(lm=deep, adapter=None):
        assert dspy.Predict("question -> answer")(question="2+2?").answer == "4"
    assert fake_upstream.requests[-1]["reasoning_effort"] == "max"

    plain = PiGatewayLM("pi/think/plain", client=think_client, cache=False, num_retries=0, reasoning_effort="max")
    with dspy.context(lm=plain, adapter=None), pytest.raises(dx.LMInvalidRequestError) as caught:
        dspy.Predict("question -> answer")(question="2+2?")
    assert json.dumps(PLAIN_LEVELS, separators=(",", ":")) in str(caught.value)
    assert fake_upstream.calls == 1
