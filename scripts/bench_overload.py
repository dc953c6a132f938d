"""scripts/bench --only overload: the gateway past saturation (issue 17), on 127.0.0.1 only.

Three measurements against the canned upstream of ``scripts/bench_upstream.mjs``:

1. **fairness** - wrk at concurrency 128 on ``/lm/complete`` (and ``/v1/chat/completions`` when
   the gateway has it): p50, p99, max, p99/p50. Targets: p99 <= 4x p50, max <= 250 ms.
2. **admission** - wrk at concurrency 512 for 5 s: every response 200 or 503 ``overloaded`` with
   ``Retry-After`` (counted per response by the Lua script), no timeouts, and ``/health`` latency
   sampled meanwhile from a keep-alive connection. Target: ``/health`` p99 < 20 ms.
3. **workers** - wrk at concurrency 32 against a one-worker and a two-worker gateway, alternating
   passes in the same run; the ratio of the medians. Target >= 1.7x. Idle RSS of each process.

Usage: ``scripts/bench --only overload [--quick]`` runs this alone (prints the figures);
``scripts/bench`` runs it after the main bench with ``--merge docs/benchmarks.json``, which adds an
``overload`` key that ``scripts/bench_report.py`` renders as the page's "Overload" section
(:func:`report`). The figures are only as quiet as the machine.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

SCRIPTS = Path(__file__).resolve().parent
sys.path.insert(0, str(SCRIPTS))

from bench_run import MESSAGES, MODEL, log, merge_into_json, pct, start_child, write_agent_dir  # noqa: E402

STATUS_LUA = r"""
wrk.method = os.getenv("BENCH_METHOD") or "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
wrk.body = os.getenv("BENCH_BODY")
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) ok = 0; shed = 0; shed_bare = 0; other = 0 end
function response(status, headers, body)
  if status == 200 then ok = ok + 1
  elseif status == 503 then
    if headers["retry-after"] or headers["Retry-After"] then shed = shed + 1
    else shed_bare = shed_bare + 1 end
  else other = other + 1 end
end
function done(summary, latency, requests)
  local t = {ok = 0, shed = 0, shed_bare = 0, other = 0}
  for _, th in ipairs(threads) do
    for k, _ in pairs(t) do t[k] = t[k] + th:get(k) end
  end
  local e = summary.errors
  local f = io.open(os.getenv("BENCH_OUT"), "w")
  f:write(string.format('{"requests": %d, "duration_us": %d, ' ..
    '"ok": %d, "shed": %d, "shed_bare": %d, "other": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}, ' ..
    '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "max": %d}}',
    summary.requests, summary.duration, t.ok, t.shed, t.shed_bare, t.other,
    e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
  f:close()
end
"""


def wrk(url: str, token: str, body: dict[str, Any], connections: int, seconds: float,
        tmp: Path) -> dict[str, Any]:
    """One wrk run counting statuses per response; latencies in ms."""
    script = tmp / "overload.lua"
    script.write_text(STATUS_LUA)
    out = tmp / f"wrk-{time.monotonic_ns()}.json"
    env = dict(os.environ, BENCH_BODY=json.dumps(body), BENCH_TOKEN=token, BENCH_OUT=str(out))
    argv = ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
            "-s", str(script), url]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"wrk failed ({proc.returncode}): {(proc.stdout + proc.stderr)[-2000:]}")
    res = json.loads(out.read_text())
    out.unlink()
    secs = res.pop("duration_us") / 1e6
    lat = {k: v / 1000 for k, v in res.pop("latency_us").items()}
    return {"connections": connections, "seconds": round(secs, 2), "rps": round(res["requests"] / secs, 1),
            **{f"{k}_ms": v for k, v in lat.items()},
            "p99_over_p50": round(lat["p99"] / lat["p50"], 2) if lat["p50"] else None, **res}


class HealthProbe(threading.Thread):
    """Sequential GET /health on one keep-alive connection until stopped; latencies in ms."""

    def __init__(self, url: str, token: str) -> None:
        super().__init__(daemon=True)
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        self.headers = {"authorization": f"Bearer {token}"}
        self.samples: list[float] = []
        self.failures = 0
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            t = time.perf_counter()
            try:
                self.conn.request("GET", "/health", headers=self.headers)
                resp = self.conn.getresponse()
                resp.read()
                if resp.status != 200:
                    self.failures += 1
            except OSError:
                self.failures += 1
                self.conn.close()
                continue
            self.samples.append((time.perf_counter() - t) * 1000)
            self.halt.wait(0.005)

    def result(self) -> dict[str, Any]:
        self.halt.set()
        self.join(15)
        s = self.samples
        return {"n": len(s), "failures": self.failures, "p50_ms": round(pct(s, 50), 2),
                "p99_ms": round(pct(s, 99), 2), "max_ms": round(max(s), 2) if s else None}


def start(extra_env: dict[str, str]) -> Any:
    from aiipython._gateway import start_gateway
    from aiipython._settings import load_settings

    return start_gateway(load_settings(dict(os.environ, **extra_env)), progress=False)


def group_rss_mb(pid: int) -> dict[str, float]:
    import psutil

    proc = psutil.Process(pid)
    rss = {"primary" if proc.children() else "gateway": round(proc.memory_info().rss / 2**20, 1)}
    for i, child in enumerate(proc.children()):
        rss[f"worker {i + 1}"] = round(child.memory_info().rss / 2**20, 1)
    return rss


def has_v1(gw: Any) -> bool:
    parts = urlsplit(gw.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.request("POST", "/v1/chat/completions", body=json.dumps({"model": MODEL, "messages": MESSAGES}),
                 headers={"authorization": f"Bearer {gw.token}", "content-type": "application/json"})
    status = conn.getresponse().status
    conn.close()
    return status == 200


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short runs (a smoke run)")
    ap.add_argument("--merge", help="add the figures to this benchmarks.json as its 'overload' key")
    args = ap.parse_args()
    q = args.quick
    fair_s, over_s, tput_s, passes = (2, 3, 2, 1) if q else (10, 5, 5, 3)
    tmp = Path(tempfile.mkdtemp(prefix="aiipython-bench-overload-"))
    os.environ["AIIPYTHON_LOCAL_MODEL"] = "off"
    os.environ["PI_CODING_AGENT_DIR"] = str(tmp / "agent")
    from aiipython._node import find_node
    from aiipython._settings import load_settings

    node = find_node(load_settings()).node
    upstream = start_child("bench_upstream", [str(node), str(SCRIPTS / "bench_upstream.mjs"), "--port", "0"])
    write_agent_dir(tmp / "agent", upstream.info["url"])
    body = {"model": MODEL, "messages": MESSAGES}
    v1_body = {"model": MODEL, "messages": MESSAGES}
    results: dict[str, Any] = {"quick": q, "cpus": os.cpu_count()}
    gateways: list[Any] = []
    try:
        single = start({"AIIPYTHON_GATEWAY_WORKERS": "1"})
        gateways.append(single)
        results["idle_rss_mb"] = {"workers=1": group_rss_mb(single.pid)}
        log("overload: warm-up c=32")
        wrk(single.url + "/lm/complete", single.token, body, 32, 3 if q else 8, tmp)

        log(f"overload: fairness, c=128 for {fair_s}s")
        fair = {"native /lm/complete": wrk(single.url + "/lm/complete", single.token, body, 128, fair_s, tmp)}
        if has_v1(single):
            fair["/v1/chat/completions"] = wrk(single.url + "/v1/chat/completions", single.token, v1_body,
                                               128, fair_s, tmp)
        results["fairness_c128"] = fair

        log(f"overload: admission, c=512 for {over_s}s with /health sampled")
        probe = HealthProbe(single.url, single.token)
        probe.start()
        over = wrk(single.url + "/lm/complete", single.token, body, 512, over_s, tmp)
        over["health"] = probe.result()
        over["every_request_answered"] = (over["other"] == 0 and over["shed_bare"] == 0
                                          and over["errors"]["timeout"] == 0 and over["errors"]["read"] == 0)
        results["admission_c512"] = over

        log("overload: throughput c=32, one worker vs two, alternating")
        multi = start({"AIIPYTHON_GATEWAY_WORKERS": "2"})
        gateways.append(multi)
        results["idle_rss_mb"]["workers=2"] = group_rss_mb(multi.pid)
        wrk(multi.url + "/lm/complete", multi.token, body, 32, 3 if q else 8, tmp)
        runs: dict[str, list[float]] = {"workers=1": [], "workers=2": []}
        for _ in range(passes):
            for name, gw in (("workers=1", single), ("workers=2", multi)):
                runs[name].append(wrk(gw.url + "/lm/complete", gw.token, body, 32, tput_s, tmp)["rps"])
        med = {k: statistics.median(v) for k, v in runs.items()}
        results["workers_c32"] = {"rps": runs, "median_rps": med,
                                  "ratio": round(med["workers=2"] / med["workers=1"], 2)}
    finally:
        for gw in gateways:
            gw.close()
        upstream.close()
    print(json.dumps(results, indent=2))
    print("\n".join(report(results)))
    if args.merge:
        merge_into_json(Path(args.merge), "overload", results)
    return 0


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def report(d: dict[str, Any]) -> list[str]:
    """The "Overload" section of docs/benchmarks.md, as markdown lines."""
    out = ["## Overload (`scripts/bench --only overload`)", ""]
    out += ["| route, c=128 | req/s | p50 ms | p99 ms | max ms | p99/p50 | target p99 <= 4x p50, max <= 250 ms |",
            "|---|---|---|---|---|---|---|"]
    for route, r in d["fairness_c128"].items():
        ok = r["p99_over_p50"] is not None and r["p99_over_p50"] <= 4 and r["max_ms"] <= 250
        out.append(f"| {route} | {r['rps']:,.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['max_ms']:.1f} "
                   f"| {r['p99_over_p50']} | {verdict(ok)} |")
    a = d["admission_c512"]
    h = a["health"]
    out += ["", f"Admission at c=512 for {a['seconds']} s: {a['requests']:,} responses, {a['ok']:,} × 200, "
            f"{a['shed']:,} × 503 `overloaded` with `Retry-After`, {a['shed_bare']} × 503 without it, "
            f"{a['other']} other statuses, {a['errors']['timeout']} timeouts, {a['errors']['read']} read errors "
            f"(every request answered: {verdict(a['every_request_answered'])}); p50 {a['p50_ms']:.1f} ms, "
            f"p99 {a['p99_ms']:.1f} ms, max {a['max_ms']:.1f} ms. `/health` meanwhile ({h['n']} sequential "
            f"calls): p50 {h['p50_ms']} ms, p99 {h['p99_ms']} ms, max {h['max_ms']} ms (target p99 < 20 ms: "
            f"{verdict(h['p99_ms'] < 20)}).", ""]
    w = d["workers_c32"]
    med = w["median_rps"]
    out.append(f"Throughput at c=32, alternating passes: one worker {med['workers=1']:,.0f} req/s, two workers "
               f"{med['workers=2']:,.0f} req/s = **{w['ratio']}×** (target >= 1.7×: {verdict(w['ratio'] >= 1.7)}) "
               f"on {d['cpus']} CPUs. Idle RSS: " + "; ".join(
                   f"{k}: " + ", ".join(f"{name} {mb:.0f} MB" for name, mb in v.items())
                   for k, v in d["idle_rss_mb"].items()) + ".")
    out.append("")
    return out


if __name__ == "__main__":
    raise SystemExit(main())
