"""Model registry and costs (aiipython.get_models / get_model / calculate_cost / estimate_cost /
sync_models) against the real gateway's catalog (pi's built-in models plus provider ``fake``)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from conftest import FAKE, Reply
from pytest_httpserver import HTTPServer

import aiipython
from aiipython import calculate_cost, estimate_cost, get_model, get_models, sync_models

pytestmark = pytest.mark.gateway

DEV = {"fake": {"id": "fake", "name": "Fake", "models": {"fake-model": {
    "id": "fake-model", "name": "Fake model", "family": "fakefam", "knowledge": "2026-01",
    "release_date": "2026-02-01", "tool_call": False, "structured_output": True, "open_weights": True,
    "modalities": {"input": ["text"], "output": ["text", "image"]}}}}}


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user cache of its own (the synced snapshot goes there), so no other test sees it."""
    monkeypatch.setenv("AIIPYTHON_CACHE_DIR", str(tmp_path))
    return tmp_path


def test_filters_match_the_catalog(client) -> None:
    raw = [m for m in client.list_models()["models"]]
    expected = [f"{m['provider']}/{m['id']}" for m in raw
                if m["reasoning"] and "image" in m["input"] and m["cost"]["input"] <= 1.0]
    found = get_models(capability="reasoning", modality="image", max_cost_input=1.0, client=client)
    assert expected and [m.full_id for m in found] == expected
    assert len(get_models(client=client)) == len(raw)
    assert [m.full_id for m in get_models(provider="fake", client=client)] == [FAKE]


def test_each_filter_on_a_known_entry(client) -> None:
    def ids(**filters: object) -> set[str]:
        return {m.full_id for m in get_models(client=client, **filters)}  # type: ignore[arg-type]

    assert FAKE in ids(min_context=32000) and FAKE not in ids(min_context=32001)  # models.json: 32000
    assert FAKE in ids(max_cost_input=1.0) and FAKE not in ids(max_cost_input=0.99)  # $1 per 1M input
    assert FAKE in ids(modality="image") and FAKE not in ids(capability="reasoning")
    assert FAKE in ids(available=True) and FAKE not in ids(available=False)
    assert "anthropic/claude-sonnet-4-5" in ids(available=False, capability="reasoning", provider="anthropic")
    with pytest.raises(ValueError, match="tool_call"):
        get_models(capability="flying", client=client)


def test_get_model_fields_and_enrichment(client) -> None:
    fake = get_model(FAKE, client=client)
    assert (fake.name, fake.limits.context, fake.limits.output, fake.cost.input, fake.cost.output) == \
        ("Fake model", 32000, 4096, 1.0, 2.0)
    assert fake.available and fake.modalities.input == ["text", "image"] and fake.family is None
    assert get_model("fake-model", client=client).full_id == FAKE  # a unique bare id
    sonnet = get_model("anthropic/claude-sonnet-4-5", client=client)
    assert sonnet.capabilities.reasoning and sonnet.cost.input == 3.0
    assert sonnet.family and sonnet.release_date and sonnet.knowledge_cutoff  # from the packaged models.dev
    with pytest.raises(aiipython.ModelNotFoundError):
        get_model("fake/no-such-model", client=client)


def test_ambiguous_bare_id_lists_candidates(client) -> None:
    listing = client.list_models()["models"]
    counts: dict[str, int] = {}
    for m in listing:
        counts[m["id"]] = counts.get(m["id"], 0) + 1
    shared = next(i for i, n in counts.items() if n > 1)
    with pytest.raises(aiipython.AmbiguousModelError) as info:
        get_model(shared, client=client)
    assert len(info.value.candidates) == counts[shared]


def test_costs_equal_pis_own(client, fake_upstream) -> None:
    fake_upstream.enqueue(Reply("ok", prompt_tokens=20, completion_tokens=8, cached_tokens=5))
    reply = aiipython.complete(FAKE, "hi", client=client)
    usage = reply.usage
    assert (usage.input, usage.cache_read, usage.output) == (15, 5, 8)
    ours = calculate_cost(FAKE, usage, client=client)
    assert usage.cost.total > 0
    for part in ("input", "output", "cache_read", "cache_write", "total"):
        assert getattr(ours, part) == pytest.approx(getattr(usage.cost, part))
    assert estimate_cost(FAKE, 20, 8, cached_tokens=5, client=client) == pytest.approx(usage.cost.total)
    assert estimate_cost(get_model(FAKE, client=client), 1_000_000) == pytest.approx(1.0)


def test_an_unknown_price_is_not_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    """A model without a known price: calculate_cost says unknown, estimate_cost is None, and
    ``aiipython cost`` prints "unknown" (null in --json), sorted after the priced models."""
    from click.testing import CliRunner

    from aiipython import Cost, Model, ModelCost, Usage
    from aiipython._ai import registry
    from aiipython._cli import cli

    assert registry._model({"id": "m", "provider": "p"}, None).cost.known is False  # listing without cost
    unpriced = Model(id="mystery", provider="p", name="Mystery", cost=ModelCost(known=False))
    priced = Model(id="cheap", provider="p", name="Cheap", cost=ModelCost(input=1.0, output=2.0))
    assert calculate_cost(unpriced, Usage(input=1000, output=10)) == Cost(known=False)
    assert estimate_cost(unpriced, 1000, 10) is None
    assert estimate_cost(priced, 1_000_000, 1_000_000) == pytest.approx(3.0)
    with pytest.raises(aiipython.ConfigurationError, match="cached_tokens"):
        estimate_cost(priced, 5, cached_tokens=6)
    models = {m.full_id: m for m in (unpriced, priced)}
    monkeypatch.setattr(registry, "get_model", lambda name, **_: models[name])

    def cost(*args: str) -> str:
        out = CliRunner().invoke(cli, ["cost", *args])
        assert out.exit_code == 0, out.output
        return out.output

    assert cost("p/mystery", "--input", "1000") == "Estimated cost: unknown (no price for this model) on p/mystery\n"
    table = cost("--compare", "p/mystery", "p/cheap", "--input", "1000000").splitlines()
    assert [line.split() for line in table] == [["p/cheap", "$1.00"],
                                                ["p/mystery", "unknown", "(no", "price", "for", "this", "model)"]]
    rows = json.loads(cost("--compare", "p/mystery", "p/cheap", "--input", "1000000", "--json"))["costs"]
    assert [(r["model"], r["total"], r["known"]) for r in rows] == [("p/cheap", 1.0, True), ("p/mystery", None, False)]


def test_sync_models_then_enrichment(client, cache_dir: Path, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api.json").respond_with_json(DEV)
    result = sync_models(httpserver.url_for("/api.json"))
    assert (result.providers, result.models) == (1, 1)
    assert result.path == cache_dir / "models.dev" / "api.json"
    assert json.loads(result.path.read_text()) == DEV
    fake = get_model(FAKE, client=client)
    assert (fake.family, fake.knowledge_cutoff, fake.release_date, fake.open_weights) == \
        ("fakefam", "2026-01", "2026-02-01", True)
    assert (fake.capabilities.tool_call, fake.capabilities.structured_output) == (False, True)
    assert fake.modalities.output == ["text", "image"] and fake.modalities.input == ["text", "image"]  # pi's input


@pytest.mark.parametrize(("body", "status", "why"), [
    ("this is not json", 200, "not JSON"),
    (json.dumps({"fake": {"id": "fake"}}), 200, "no 'models' object"),
    (json.dumps([]), 200, "not a models.dev api.json"),
    ("oops", 500, "HTTP 500"),
])
def test_sync_models_broken_reply_keeps_the_old_snapshot(cache_dir: Path, httpserver: HTTPServer,
                                                         body: str, status: int, why: str) -> None:
    httpserver.expect_request("/good").respond_with_json(DEV)
    httpserver.expect_request("/broken").respond_with_data(body, status=status)
    good = sync_models(httpserver.url_for("/good")).path
    before = good.read_bytes()
    with pytest.raises(aiipython.AiipythonError, match=why) as info:
        sync_models(httpserver.url_for("/broken"))
    assert info.value.code == "models_sync_failed" and "previous snapshot is kept" in info.value.message
    assert good.read_bytes() == before
    assert [p.name for p in good.parent.iterdir()] == ["api.json"]  # no temporary file left


def test_sync_models_unreachable(cache_dir: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(aiipython.AiipythonError, match="could not download"):
        sync_models(f"http://127.0.0.1:{port}/api.json", timeout=5)


def test_cost_command(client) -> None:  # type: ignore[no-untyped-def]
    import os
    import subprocess
    import sys

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "aiipython", "cost", *args], capture_output=True, text=True,
                              env=dict(os.environ), timeout=180, stdin=subprocess.DEVNULL)

    out = run(FAKE, "--input", "1000000", "--output", "1000000", "--json")
    assert out.returncode == 0, out.stderr
    (row,) = json.loads(out.stdout)["costs"]
    assert (row["model"], row["total"]) == (FAKE, pytest.approx(3.0))  # $1 in + $2 out per 1M
    assert run(FAKE, "--input", "5", "--cached", "6").returncode == 2


def _cli(gateway, *args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    """``aiipython ARGS`` as a subprocess on the session's gateway."""
    import os
    import subprocess
    import sys

    full = {**os.environ, "AIIPYTHON_GATEWAY_URL": gateway.url, "AIIPYTHON_GATEWAY_TOKEN": gateway.token,
            **(env or {})}
    return subprocess.run([sys.executable, "-m", "aiipython", *args], capture_output=True, text=True, env=full,
                          timeout=180, stdin=subprocess.DEVNULL)


def test_models_command_filters_are_get_models(gateway, client) -> None:  # type: ignore[no-untyped-def]
    def listed(*args: str) -> list[str]:
        out = _cli(gateway, "models", *args, "--json")
        assert out.returncode == 0, out.stderr
        return [f"{m['provider']}/{m['id']}" for m in json.loads(out.stdout)["models"]]

    expected = [m.full_id for m in get_models(capability="reasoning", modality="image", max_cost_input=1.0,
                                              client=client)]
    assert expected and listed("--capability", "reasoning", "--modality", "image", "--max-cost-input", "1") == expected
    assert FAKE in listed("--min-context", "32000", "--provider", "fake")
    assert listed("--min-context", "32001", "--provider", "fake") == []
    bad = _cli(gateway, "models", "--capability", "flying")
    assert bad.returncode == 2 and "tool_call" in bad.stderr


def test_models_info_command(gateway) -> None:  # type: ignore[no-untyped-def]
    out = _cli(gateway, "models", "info", "fake-model", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert (data["model"], data["limits"], data["cost"]["input"], data["available"]) == \
        (FAKE, {"context": 32000, "output": 4096}, 1.0, True)
    text = _cli(gateway, "models", "info", FAKE)
    assert text.returncode == 0 and "Context:" in text.stdout and "32,000 tokens" in text.stdout
    missing = _cli(gateway, "models", "info", "fake/nope")
    assert missing.returncode == 1 and "Error:" in missing.stderr


def test_models_sync_command(gateway, cache_dir: Path, httpserver: HTTPServer) -> None:  # type: ignore[no-untyped-def]
    httpserver.expect_request("/api.json").respond_with_json(DEV)
    httpserver.expect_request("/broken").respond_with_data("oops", status=500)
    out = _cli(gateway, "models", "sync", "--url", httpserver.url_for("/api.json"), "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"path": str(cache_dir / "models.dev" / "api.json"), "providers": 1, "models": 1}
    broken = _cli(gateway, "models", "sync", "--url", httpserver.url_for("/broken"))
    assert broken.returncode == 1 and "previous snapshot is kept" in broken.stderr
    assert json.loads((cache_dir / "models.dev" / "api.json").read_text()) == DEV
