"""Shared fixtures. No test touches the user's real pi files, caches or a network provider.

- Every ``AIIPYTHON_*`` variable is cleared per test; the gateway's npm cache is one directory
  per test session (``npm ci`` runs once), pi's agent dir is a temporary one, the local model is
  off unless a test turns it on, and DSPy's cache lives in a temp dir.
- ``fake_upstream`` is a scripted OpenAI-compatible upstream; ``gateway`` is a real Node gateway
  (session-wide) whose pi knows it as provider ``fake``, model ``fake/fake-model``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Before anything imports dspy or litellm.
_SESSION_TMP = Path(tempfile.mkdtemp(prefix="aiipython-tests-"))
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
os.environ["DSPY_CACHEDIR"] = str(_SESSION_TMP / "dspy-cache")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from fake_upstream import FAKE_MODEL, FAKE_PROVIDER, FakeUpstream, Reply, write_models_json  # noqa: E402

#: The npm cache shared by this session (``AIIPYTHON_TEST_CACHE_DIR`` reuses one across runs).
GATEWAY_CACHE = Path(os.environ.get("AIIPYTHON_TEST_CACHE_DIR") or (_SESSION_TMP / "cache"))
FAKE = f"{FAKE_PROVIDER}/{FAKE_MODEL}"

__all__ = ["FAKE", "GATEWAY_CACHE", "Reply"]


@pytest.fixture(scope="session")
def session_tmp() -> Path:
    return _SESSION_TMP


@pytest.fixture(scope="session")
def fake_upstream_session() -> Iterator[FakeUpstream]:
    upstream = FakeUpstream().start()
    yield upstream
    upstream.stop()


@pytest.fixture
def fake_upstream(fake_upstream_session: FakeUpstream) -> Iterator[FakeUpstream]:
    """The session's fake upstream, with an empty reply queue and request log."""
    fake_upstream_session.reset()
    yield fake_upstream_session
    fake_upstream_session.reset()


@pytest.fixture(scope="session")
def agent_dir(fake_upstream_session: FakeUpstream) -> Path:
    """A pi agent dir whose models.json declares the fake upstream as provider ``fake``."""
    path = _SESSION_TMP / "pi-agent"
    write_models_json(path, fake_upstream_session.base_url)
    return path


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, agent_dir: Path) -> None:
    for name in list(os.environ):
        if name.startswith("AIIPYTHON_") and name != "AIIPYTHON_TEST_CACHE_DIR":
            monkeypatch.delenv(name)
    monkeypatch.setenv("AIIPYTHON_CACHE_DIR", str(GATEWAY_CACHE))
    monkeypatch.setenv("AIIPYTHON_LOCAL_MODEL", "off")
    monkeypatch.setenv("PI_CODING_AGENT_DIR", str(agent_dir))
    for key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "OPENROUTER_API_KEY"):
        monkeypatch.delenv(key, raising=False)


@pytest.fixture(scope="session")
def gateway(agent_dir: Path):  # type: ignore[no-untyped-def]
    """A real gateway (Node, pi as package.json pins it) for the whole session, separate from ``get_gateway()``."""
    from aiipython._gateway import start_gateway
    from aiipython._settings import load_settings

    env = {"AIIPYTHON_CACHE_DIR": str(GATEWAY_CACHE), "AIIPYTHON_LOCAL_MODEL": "off",
           "PI_CODING_AGENT_DIR": str(agent_dir), "AIIPYTHON_REQUEST_TIMEOUT": "30"}
    gw = start_gateway(load_settings(env))
    yield gw
    gw.close()


@pytest.fixture
def client(gateway):  # type: ignore[no-untyped-def]
    from aiipython import PiGatewayClient

    c = PiGatewayClient(gateway=gateway)
    yield c
    c.close()


@pytest.fixture
def process_gateway() -> Iterator[None]:
    """Make sure the process-wide gateway (``get_gateway()``) is stopped after the test."""
    from aiipython._gateway import close_gateway

    close_gateway()
    yield
    close_gateway()
