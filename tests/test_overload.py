"""Admission control end to end: a gateway with one slot and no queue, a slow scripted upstream
holding the slot, the 503 ``overloaded`` answer with ``Retry-After``, its Python mapping, and DSPy's
retry turning it into a success through PiGatewayLM (issue 17)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dspy
import pytest
from conftest import FAKE, GATEWAY_CACHE, Reply
from dspy.clients import execution
from dspy.clients.errors import wrap_error
from dspy.utils.exceptions import is_retryable_lm_error

from aiipython import GatewayOverloadedError, PiGatewayClient, PiGatewayLM
from aiipython._errors import is_retryable
from aiipython._gateway import Gateway, start_gateway
from aiipython._lm_convert import lm15_error
from aiipython._settings import load_settings

pytestmark = pytest.mark.gateway

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def one_slot_gateway(agent_dir: Path) -> Iterator[Gateway]:
    env = {"AIIPYTHON_CACHE_DIR": str(GATEWAY_CACHE), "AIIPYTHON_LOCAL_MODEL": "off",
           "PI_CODING_AGENT_DIR": str(agent_dir), "AIIPYTHON_REQUEST_TIMEOUT": "30",
           "AIIPYTHON_GATEWAY_MAX_INFLIGHT": "1", "AIIPYTHON_GATEWAY_MAX_QUEUE": "0"}
    gw = start_gateway(load_settings(env))
    yield gw
    gw.close()


@pytest.fixture
def slot_client(one_slot_gateway: Gateway) -> Iterator[PiGatewayClient]:
    c = PiGatewayClient(gateway=one_slot_gateway)
    yield c
    c.close()


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


class SlotHolder:
    """A call on a background thread that the upstream holds until ``release()``."""

    def __init__(self, client: PiGatewayClient, fake_upstream: Any) -> None:
        self.gate = threading.Event()
        self.result: dict[str, Any] = {}
        fake_upstream.enqueue(Reply("held", hang=self.gate))
        self.thread = threading.Thread(target=self._run, args=(client,), daemon=True)
        self.thread.start()
        wait_for(lambda: fake_upstream.calls == 1, "the slow call to reach the upstream")

    def _run(self, client: PiGatewayClient) -> None:
        self.result["reply"] = client.complete(FAKE, MESSAGES)

    def release(self) -> None:
        self.gate.set()
        self.thread.join(30)


def test_a_full_gateway_answers_503_overloaded_with_retry_after_at_once(slot_client, fake_upstream):
    holder = SlotHolder(slot_client, fake_upstream)
    try:
        shed_before = slot_client.health()["admission"]["shed"]
        with pytest.raises(GatewayOverloadedError) as info:
            slot_client.complete(FAKE, MESSAGES)
        health = slot_client.health()  # a cheap route is answered while the slot is taken
    finally:
        holder.release()
    err = info.value
    assert (err.status, err.code, err.retry_after) == (503, "overloaded", 1.0)
    assert "at capacity" in err.message
    assert is_retryable(err)
    mapped = lm15_error(err)
    assert mapped is not None
    seen_by_dspy = wrap_error(mapped, model="pi/" + FAKE)  # what DSPy's retry loop classifies
    assert is_retryable_lm_error(seen_by_dspy) and seen_by_dspy.retry_after == 1.0
    assert health["admission"]["inflight"] == 1 and health["admission"]["shed"] == shed_before + 1
    assert fake_upstream.calls == 1, "the shed call never reached the upstream"
    assert holder.result["reply"]["message"]["content"][0]["text"] == "held"


def test_dspy_retry_turns_the_shed_into_a_success(slot_client, fake_upstream, monkeypatch):
    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)
    holder = SlotHolder(slot_client, fake_upstream)
    fake_upstream.enqueue(Reply("[[ ## answer ## ]]\nParis\n\n[[ ## completed ## ]]"))
    waits: list[float] = []
    real_sleep = time.sleep

    def sleep(seconds: float) -> None:
        # DSPy's retry sleeps Retry-After: free the slot then (deterministic, no timing race).
        if threading.current_thread() is threading.main_thread() and not holder.gate.is_set():
            waits.append(seconds)
            holder.release()
            return
        real_sleep(seconds)

    monkeypatch.setattr(execution.time, "sleep", sleep)
    lm = PiGatewayLM("pi/" + FAKE, client=slot_client, cache=False, num_retries=2)
    try:
        with dspy.context(lm=lm):
            result = dspy.Predict("question -> answer")(question="Capital of France?")
    finally:
        holder.release()
    assert result.answer == "Paris"
    assert waits == [1.0], "exactly one attempt was shed, and DSPy waited the gateway's Retry-After"
    assert fake_upstream.calls == 2  # the held call and the retried one; the shed one never left
