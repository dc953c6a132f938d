"""Issue 12's acceptance for the import: cheap beyond DSPy's own, and no model module until used.

The speed goals live in ``scripts/bench`` (docs/benchmarks.md); this is the one timed test, because
the issue asks for it. Its bound is the issue's generous 150 ms (the benchmark measures ~20 ms), and
each figure is the median of several fresh interpreters, so one slow run on a busy 2-core machine
does not fail it.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

#: The issue's bound on what ``import aiipython`` adds, in milliseconds.
BOUND_MS = 150.0
#: Fresh interpreters per figure; the median is compared.
RUNS = 5

#: Modules that ``import aiipython`` must not load: our pydantic-model modules, and the heavy
#: libraries they and the clients pull in (loaded on first use of a name that needs them).
NOT_AT_IMPORT = (
    "aiipython._ai",
    "aiipython._ai.types",
    "aiipython._ai.events",
    "aiipython._ai.registry",
    "aiipython._ai.api",
    "aiipython._lm",
    "aiipython._client",
    "pydantic",
    "pydantic_core",
    "litellm",
    "dspy",
    "httpx",
    "openai",
)

_TIMED = ("import time{pre}\nt = time.perf_counter()\nimport aiipython\n"
          "print((time.perf_counter() - t) * 1000)\n")


def _import_ms(pre: str) -> list[float]:
    """Milliseconds ``import aiipython`` takes in ``RUNS`` fresh interpreters, after ``pre`` ran."""
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    code = _TIMED.format(pre=pre)
    return [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                 env=env, timeout=120).stdout)
            for _ in range(RUNS)]


def test_import_adds_at_most_150_ms_beyond_dspy() -> None:
    """Timed inside each interpreter, so interpreter start and DSPy's own import are not counted."""
    after_dspy = _import_ms("; import dspy")
    assert statistics.median(after_dspy) <= BOUND_MS, after_dspy


def test_import_alone_stays_under_the_bound_too() -> None:
    """Without DSPy loaded first nothing is shared with it: an upper bound on the cost beyond DSPy."""
    alone = _import_ms("")
    assert statistics.median(alone) <= BOUND_MS, alone


def test_import_loads_no_model_module_nor_heavy_library() -> None:
    code = f"import json, sys, aiipython; print(json.dumps([m for m in {NOT_AT_IMPORT!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(out.stdout) == []
    # they load on first use of a name that needs them (so the check above can fail), and only those
    code = ("import json, sys, aiipython; aiipython.Context; "
            f"print(json.dumps([m for m in {NOT_AT_IMPORT!r} if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    loaded = set(json.loads(out.stdout))
    assert {"aiipython._ai.types", "pydantic"} <= loaded
    assert not loaded & {"aiipython._ai.api", "litellm", "dspy", "httpx"}, loaded
