"""Per-call overhead of the typed API: ``aiipython.complete`` over ``PiGatewayClient.complete``.

Two figures:

- **The typed layer alone** (the target figure): ``aiipython.complete`` with the client's
  ``complete`` replaced by one recorded real reply of the gateway, so what is timed is exactly what
  the typed API adds around the call — checking the Context, choosing the backend, building the
  request, validating pi's AssistantMessage into pydantic — without the HTTP round trip, whose
  ±1 ms drift on this VM swamps a 0.1 ms target. Target: <= 0.1 ms (median of round medians).
- **End to end**, as a cross-check: both against the same real gateway (pi, provider ``fake`` at
  scripts/bench_upstream.mjs), interleaved rounds, median of per-round differences.

Prints JSON; writes
nothing unless ``--merge FILE`` (then it adds the figures as that JSON file's ``typed_api`` key,
which ``scripts/bench`` does and ``bench_report.py`` renders). Loopback only.

    .venv/bin/python scripts/bench_api.py [--quick] [--merge docs/benchmarks.json]
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_run import merge_into_json, start_child, write_agent_dir

TARGET_MS = 0.1


def layer_alone(client: Any, model: str, context: Any, rounds: int, n: int) -> list[float]:
    """Round medians (ms) of ``aiipython.complete`` with ``client.complete`` answering from one
    recorded real reply: the typed layer's own work per call, no round trip."""
    import aiipython

    reply = client.complete(model, [{"role": "user", "content": "hi"}])
    client.complete = lambda *args, **kwargs: reply  # this instance only; restored below
    try:
        for _ in range(n):
            aiipython.complete(model, context, client=client)
        out = []
        for _ in range(rounds):
            times = []
            for _ in range(n):
                start = time.perf_counter()
                aiipython.complete(model, context, client=client)
                times.append((time.perf_counter() - start) * 1000)
            out.append(statistics.median(times))
        return out
    finally:
        del client.complete


def main() -> None:
    quick = "--quick" in sys.argv
    rounds, n = (3, 100) if quick else (7, 400)
    import aiipython
    from aiipython._gateway import start_gateway
    from aiipython._node import find_node
    from aiipython._settings import load_settings

    node = find_node(load_settings()).node
    script = Path(__file__).resolve().parent / "bench_upstream.mjs"
    upstream = start_child("bench_upstream", [str(node), str(script), "--port", "0"])
    with tempfile.TemporaryDirectory(prefix="aiipython-bench-api-") as tmp:
        write_agent_dir(Path(tmp), upstream.info["url"])
        env = {**os.environ, "PI_CODING_AGENT_DIR": tmp, "AIIPYTHON_LOCAL_MODEL": "off"}
        gateway = start_gateway(load_settings(env), progress=False)
        client = aiipython.PiGatewayClient(gateway=gateway)
        model, messages = "fake/fake-model", [{"role": "user", "content": "hi"}]
        context = aiipython.ctx(aiipython.user("hi"))
        try:
            def raw() -> None:
                client.complete(model, messages)

            def typed() -> None:
                aiipython.complete(model, context, client=client)

            for fn in (raw, typed):
                for _ in range(50):
                    fn()  # warm up: connections, the backend choice, pydantic
            samples: dict[str, list[float]] = {"client": [], "typed": []}
            medians: dict[str, list[float]] = {"client": [], "typed": []}
            for _ in range(rounds):  # interleaved rounds: drift on a loaded machine hits both
                for name, fn in (("client", raw), ("typed", typed)):
                    times = []
                    for _ in range(n):
                        start = time.perf_counter()
                        fn()
                        times.append((time.perf_counter() - start) * 1000)
                    samples[name] += times
                    medians[name].append(statistics.median(times))
            diffs = [t - c for t, c in zip(medians["typed"], medians["client"], strict=True)]
            overhead = statistics.median(diffs)
            alone = layer_alone(client, model, context, rounds, n * 5)
            result = {
                "calls_per_path": rounds * n,
                "client_median_ms": round(statistics.median(samples["client"]), 4),
                "typed_median_ms": round(statistics.median(samples["typed"]), 4),
                "overhead_ms_median_of_rounds": round(overhead, 4),
                "overhead_ms_per_round": [round(d, 4) for d in diffs],
                "layer_alone_ms": round(statistics.median(alone), 4),
                "layer_alone_ms_per_round": [round(x, 4) for x in alone],
                "layer_alone_calls": rounds * n * 5,
                "target_ms": TARGET_MS, "met": statistics.median(alone) <= TARGET_MS,
            }
            print(json.dumps(result, indent=2))
            if "--merge" in sys.argv:
                merge_into_json(Path(sys.argv[sys.argv.index("--merge") + 1]), "typed_api", result)
        finally:
            client.close()
            gateway.close()
            upstream.close()


if __name__ == "__main__":
    main()
