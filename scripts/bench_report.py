"""Turn docs/benchmarks.json into docs/benchmarks.md and the charts in docs/benchmarks/.

    .venv/bin/python scripts/bench_report.py [--json docs/benchmarks.json]

Called by scripts/bench after a run; can be re-run alone to redraw the page from the raw numbers.
Every figure is printed with its target beside it and met/missed; nothing here measures anything.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

LABELS = {
    "floor_httpx_upstream": "floor: Python httpx -> upstream",
    "floor_node_fetch_upstream": "floor: Node fetch -> upstream",
    "a_pi_streamSimple": "(a') pi streamSimple alone, in Node",
    "a_inprocess_adapter": "(a) gateway code in Node, no HTTP hop",
    "b0_httpx_gateway": "(b0) raw httpx -> gateway /lm/complete",
    "b_client_gateway": "(b) PiGatewayClient -> gateway",
    "c_predict_pigatewaylm": "(c) dspy.Predict on PiGatewayLM",
    "d_predict_dspy_native": "(d) dspy.Predict, DSPy native route",
    "e_predict_litellm": "(e) dspy.Predict, engine=\"litellm\"",
}
TTFT_LABELS = {
    "direct_httpx_upstream": "direct: httpx -> upstream (first content chunk)",
    "inprocess_pi": "pi in-process in Node (first text_delta)",
    "gateway_stream": "gateway /lm/stream via PiGatewayClient (first text_delta)",
}


def fmt(v: float | None, nd: int = 2) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:,.{nd}f}"


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**met**" if ok else "**missed**")


# ---- charts ------------------------------------------------------------------------------------


def charts(d: dict[str, Any], outdir: Path) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outdir.mkdir(parents=True, exist_ok=True)
    made: dict[str, str] = {}

    # per-call latency by path
    paths = d["per_call"]["paths"]
    order = [k for k in LABELS if k in paths]
    fig, ax = plt.subplots(figsize=(9, 4.6))
    ys = list(range(len(order)))[::-1]
    med = [paths[k]["median_of_round_medians"] for k in order]
    p95 = [paths[k]["p95"] for k in order]
    p99 = [paths[k]["p99"] for k in order]
    colors = ["#9e9e9e" if k.startswith("floor") else "#1f77b4" if k[0] in "ab" else "#ff7f0e" for k in order]
    ax.barh(ys, med, color=colors, height=0.6, label="median of round medians")
    ax.hlines(ys, med, p95, color="black", lw=1)
    ax.plot(p95, ys, "k|", ms=10, label="p95")
    ax.plot(p99, ys, "rx", ms=6, label="p99")
    for y, m in zip(ys, med):
        ax.text(m, y + 0.32, f" {m:.2f}", va="center", fontsize=8)
    ax.set_yticks(ys, [LABELS[k] for k in order], fontsize=8)
    ax.set_xlabel("ms per call (sequential, keep-alive, canned local upstream)")
    ax.set_xlim(0, max(p95) * 1.15)
    hop = d["per_call"]["hop_ms"]["p50"]
    ax.set_title(f"Per-call latency by path — gateway hop (b) − (a) = {hop:.2f} ms (target ≤ 0.5 ms)", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(outdir / "per_call.png", dpi=110)
    plt.close(fig)
    made["per_call"] = "benchmarks/per_call.png"

    # throughput and latency by concurrency
    tp = d["throughput"]["gateway"]
    cs = [r["connections"] for r in tp]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    a1.bar([str(c) for c in cs], [r["rps"] for r in tp], color="#1f77b4")
    for i, r in enumerate(tp):
        a1.text(i, r["rps"], f"{r['rps']:,.0f}", ha="center", va="bottom", fontsize=8)
    a1.axhline(d["targets"]["rps_c32_min"], color="red", ls="--", lw=1, label="target at c=32: 3,000 req/s")
    a1.set_xlabel("concurrent connections (wrk)")
    a1.set_ylabel("requests/s through the gateway")
    a1.set_title("Gateway throughput, POST /lm/complete", fontsize=10)
    a1.legend(fontsize=8)
    a2.plot([str(c) for c in cs], [r["p50_ms"] for r in tp], "o-", label="p50")
    a2.plot([str(c) for c in cs], [r["p99_ms"] for r in tp], "s-", color="#d62728", label="p99")
    a2.axhline(d["targets"]["p99_c32_max_ms"], color="red", ls="--", lw=1, label="p99 target at c=32: 20 ms")
    a2.set_yscale("log")
    a2.set_xlabel("concurrent connections (wrk)")
    a2.set_ylabel("latency, ms (log)")
    a2.set_title("Latency under load", fontsize=10)
    a2.legend(fontsize=8)
    a2.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(outdir / "throughput.png", dpi=110)
    plt.close(fig)
    made["throughput"] = "benchmarks/throughput.png"

    # TTFT
    tt = d["ttft"]["paths"]
    order = [k for k in TTFT_LABELS if k in tt]
    fig, ax = plt.subplots(figsize=(8, 2.6))
    ys = list(range(len(order)))[::-1]
    med = [tt[k]["median_of_round_medians"] for k in order]
    ax.barh(ys, med, color=["#9e9e9e", "#2ca02c", "#1f77b4"][: len(order)], height=0.6)
    ax.plot([tt[k]["p95"] for k in order], ys, "k|", ms=10, label="p95")
    for y, m in zip(ys, med):
        ax.text(m, y, f" {m:.2f}", va="center", fontsize=8)
    ax.set_yticks(ys, [TTFT_LABELS[k] for k in order], fontsize=8)
    ax.set_xlabel("ms to the first token")
    ax.set_title(f"Time to first token — gateway overhead {d['ttft']['overhead_ms']:.2f} ms (target ≤ 1 ms)", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(outdir / "ttft.png", dpi=110)
    plt.close(fig)
    made["ttft"] = "benchmarks/ttft.png"

    # memory
    m = d["memory"]
    stages = [("at ready", m["rss_mb_at_ready"]), ("idle after warm-up", m["rss_mb_idle_after_warmup"])]
    for i, b in enumerate(m["blocks"]):
        stages.append((f"after {sum(x['requests'] for x in m['blocks'][: i + 1]):,} req", b["rss_mb_after"]))
    stages.append(("after a forced GC", m["rss_mb_after_gc"]))
    stages.append(("peak under load", m["peak_rss_mb_under_load"]))
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.bar([s[0] for s in stages], [s[1] for s in stages], color="#8c564b")
    for i, s in enumerate(stages):
        ax.text(i, s[1], f"{s[1]:.0f}", ha="center", va="bottom", fontsize=8)
    ax.axhline(d["targets"]["rss_idle_max_mb"], color="red", ls="--", lw=1, label="idle target 150 MB")
    ax.set_ylabel("gateway RSS, MB")
    ax.set_title("Sidecar memory (psutil RSS)", fontsize=10)
    ax.tick_params(axis="x", labelsize=8)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(outdir / "memory.png", dpi=110)
    plt.close(fig)
    made["memory"] = "benchmarks/memory.png"
    return made


# ---- the page ------------------------------------------------------------------------------------


def page(d: dict[str, Any], imgs: dict[str, str]) -> str:
    t = d["targets"]
    mach = d["machine"]
    pc = d["per_call"]
    paths = pc["paths"]
    med = {k: v["median_of_round_medians"] for k, v in paths.items()}
    hop = pc["hop_ms"]
    su = d["startup"]
    mem = d["memory"]
    tp = {r["connections"]: r for r in d["throughput"]["gateway"]}
    c32 = tp.get(32)
    bg = d.get("background", {})
    ratio_native = med["c_predict_pigatewaylm"] / med["d_predict_dspy_native"]
    ratio_litellm = med["e_predict_litellm"] / med["c_predict_pigatewaylm"]
    spawn_s = su["spawn_ready_ms"]["median"] / 1000
    blocks = mem["blocks"]
    growth = (blocks[-1]["rss_mb_after"] - blocks[0]["rss_mb_after"]) / blocks[0]["rss_mb_after"] * 100
    heap = mem.get("heap_after_blocks") or {}
    heap_after = heap.get("after_gc", {}).get("heapUsed")
    total_blocks = sum(b["requests"] for b in blocks)

    rows = [
        ("Gateway hop p50: (b) − (a)", f"{hop['p50']:.2f} ms", "≤ 0.5 ms", hop["p50"] <= t["hop_p50_ms"]),
        ("`Predict` on PiGatewayLM vs DSPy native route", f"{ratio_native:.2f}× ({med['c_predict_pigatewaylm']:.2f} vs {med['d_predict_dspy_native']:.2f} ms)",
         "≤ 1.2×", ratio_native <= t["predict_vs_native_max_ratio"]),
        ("litellm engine vs PiGatewayLM `Predict`", f"{ratio_litellm:.2f}× slower ({med['e_predict_litellm']:.2f} ms)",
         "≥ 2× slower", ratio_litellm >= t["litellm_vs_predict_min_ratio"]),
        ("Throughput at concurrency 32", f"{c32['rps']:,.0f} req/s" if c32 else "n/a", "≥ 3,000 req/s",
         c32["rps"] >= t["rps_c32_min"] if c32 else None),
        ("p99 at concurrency 32", f"{c32['p99_ms']:.1f} ms" if c32 else "n/a", "< 20 ms",
         c32["p99_ms"] < t["p99_c32_max_ms"] if c32 else None),
        ("TTFT overhead (gateway − direct)", f"{d['ttft']['overhead_ms']:.2f} ms", "≤ 1 ms",
         d["ttft"]["overhead_ms"] <= t["ttft_overhead_max_ms"]),
        ("Gateway spawn → ready (warm node_modules)", f"{spawn_s:.2f} s", "≤ 0.8 s", spawn_s <= t["spawn_ready_max_s"]),
        ("`import aiipython`", f"{su['import_ms']['median']:.1f} ms", "≤ 150 ms",
         su["import_ms"]["median"] <= t["import_max_ms"]),
        ("Sidecar RSS idle (at ready)", f"{mem['rss_mb_at_ready']:.0f} MB", "≤ 150 MB",
         mem["rss_mb_at_ready"] <= t["rss_idle_max_mb"]),
        (f"Sidecar RSS flat over {blocks[-1]['requests']:,} requests (2nd block vs 1st)",
         f"{growth:+.1f} % ({blocks[0]['rss_mb_after']:.0f} → {blocks[-1]['rss_mb_after']:.0f} MB)",
         "flat (< +10 %)", growth < 10),
    ]
    met = sum(1 for r in rows if r[3])

    L: list[str] = []
    w = L.append
    w("# Benchmarks")
    w("")
    w("Generated by `scripts/bench` — do not edit by hand; re-run it to refresh. Raw numbers: "
      "[`benchmarks.json`](benchmarks.json).")
    w("")
    w(f"**{met} of {len(rows)} targets met** on this run ({mach['date']}, {mach['cores']} cores, "
      f"total bench time {d['runtime_s']:.0f} s{', QUICK smoke run' if d.get('quick') else ''}).")
    w("")
    qc = d.get("quiet_check", {})
    noisy = [k for k, v in bg.items() if v.get("others", 0) > 25]
    if not qc.get("quiet", True) or noisy:
        w(f"> **Shared machine:** other processes were using the CPU during this run "
          f"(at start {qc.get('others_percent_at_start', 0):.0f} % of a core"
          + (f"; during {', '.join(noisy)}: " + ", ".join(f"{bg[k]['others']:.0f} %" for k in noisy) if noisy else "")
          + "). Figures are pessimistic; the `others` CPU column below says how much.")
        w("")
    w("## Targets")
    w("")
    w("| figure | measured | target | |")
    w("|---|---|---|---|")
    for name, val, target, ok in rows:
        w(f"| {name} | {val} | {target} | {verdict(ok)} |")
    w("")
    refs = t["references_hop_p50_ms"]
    w("Independent references for a gateway hop (p50): " + ", ".join(f"{k} {v} ms" for k, v in refs.items()) + ".")
    w("")

    w("## Machine and versions")
    w("")
    v = mach["versions"]
    w(f"- {mach['cpu']}, {mach['cores']} cores, {mach['memory_gib']} GiB, {mach['os']}")
    w(f"- Python {mach['python']}, Node {mach['node']} (`{Path(mach['node_path']).parent.parent.name}` wheel)")
    w("- " + ", ".join(f"{k} {val}" for k, val in v.items() if val))
    if mach.get("git"):
        w(f"- code: commit `{mach['git']['commit']}`{' + uncommitted changes in ' + ', '.join(mach['git']['dirty']) if mach['git']['dirty'] else ''}")
    w("")

    w("## How to run")
    w("")
    w("```")
    w("scripts/bench            # the full run (about 2-3 minutes on 2 cores), rewrites this page")
    w("scripts/bench --quick    # a smoke run with fewer samples")
    w("```")
    w("")
    w("It needs `scripts/setup` done first (the `.venv`), installs `wrk` with apt-get when missing (as root), "
      "and talks to 127.0.0.1 only.")
    w("")

    w("## Method")
    w("")
    w("- **Upstream:** `scripts/bench_upstream.mjs`, its own Node process: canned OpenAI chat-completions replies "
      "(SSE when `stream: true`, JSON otherwise), prebuilt buffers, TCP_NODELAY, keep-alive. wrk drives it at "
      f"{d['throughput']['upstream_direct_c32']['rps']:,.0f} req/s at c=32, so it is never the bottleneck. "
      "pi reaches it as provider `fake` declared in a temporary `PI_CODING_AGENT_DIR/models.json` "
      "(the compat flags of `tests/fake_upstream.py`). The reply text is a valid DSPy ChatAdapter answer "
      "(`[[ ## answer ## ]] Paris`), so `Predict` makes exactly one call.")
    w("- **Gateway:** started with `aiipython.start_gateway()` from the warm per-user cache, "
      "`AIIPYTHON_LOCAL_MODEL=off`, default log level; the Python side is this process "
      "(its Sidecar drains the gateway's stderr, as in real use).")
    w(f"- **Per-call paths:** warm-up {pc['warmup']} calls each, then {pc['rounds']} interleaved rounds "
      f"(the order rotates every round) of {pc['calls_per_round']} sequential calls per path. Reported: the "
      "median of the round medians, and p95/p99 over every sample. The hop is (b) − (a) from the same run. "
      "(a) runs in `scripts/bench_pi_inproc.mjs`, which loads the installed gateway's own modules "
      "(same files, same node_modules, the gateway's undici dispatcher) and does what `POST /lm/complete` does "
      "minus HTTP: resolve, convertRequest, callOptions, ensureAuth, stream().result(). "
      "DSPy: `dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)`, `cache=False`, "
      "`DSPY_CACHEDIR` in a temp dir, `LITELLM_LOCAL_MODEL_COST_MAP=True`.")
    w("- **Streaming:** model `fake-stream`: the upstream sends the first content chunk at once and the rest "
      f"{d['ttft']['upstream_gap_ms']} ms later, so the first token is unambiguous; every stream is read to its end.")
    w("- **Throughput:** `wrk` (a separate process, Lua script: POST, bearer token, JSON body), "
      "1 s warm-up then a timed run per concurrency. CPU% of each process from psutil over the run "
      "(100 % = one core); `others` is the machine's busy CPU minus this bench's process tree.")
    w("- **Memory:** psutil RSS of the gateway pid; heap via the inspector (SIGUSR1, `HeapProfiler.collectGarbage`, "
      "`process.memoryUsage()`) after the memory blocks.")
    w("- **Start-up:** `import aiipython` timed inside fresh interpreters; `start_gateway()` → readiness line, "
      "after one untimed start; first `npm ci` into an empty `AIIPYTHON_CACHE_DIR`.")
    w("")

    # ---- 1
    w("## 1. Per-call overhead of the gateway hop")
    w("")
    w(f"![per-call latency by path]({imgs['per_call']})")
    w("")
    w("| path | median of round medians (ms) | p50 | p95 | p99 | n |")
    w("|---|---|---|---|---|---|")
    for k in LABELS:
        if k in paths:
            p = paths[k]
            w(f"| {LABELS[k]} | {fmt(p['median_of_round_medians'], 3)} | {fmt(p['p50'], 3)} | {fmt(p['p95'], 3)} | "
              f"{fmt(p['p99'], 3)} | {p['n']} |")
    w("")
    w(f"- **Hop (b) − (a): {hop['p50']:.3f} ms** (median of per-round differences {hop['median_of_round_differences']:.3f} ms; "
      f"p95 {hop['p95']:.2f}, p99 {hop['p99']:.2f} ms). Target ≤ 0.5 ms: {verdict(hop['p50'] <= t['hop_p50_ms'])}.")
    w(f"- Inside the gateway the pi call itself took {pc['gateway_reported_pi_call_ms_median']:.2f} ms "
      "(median `duration_ms` the gateway reports); the rest of (b) is HTTP, fastify and the Python client.")
    w(f"- Client library cost: (b) PiGatewayClient − (b0) raw httpx = "
      f"{med['b_client_gateway'] - med['b0_httpx_gateway']:+.3f} ms. pi's own share: (a) − Node fetch floor = "
      f"{med['a_inprocess_adapter'] - med['floor_node_fetch_upstream']:+.3f} ms.")
    w(f"- `Predict`: PiGatewayLM {med['c_predict_pigatewaylm']:.2f} ms, DSPy native {med['d_predict_dspy_native']:.2f} ms "
      f"(ratio {ratio_native:.2f}, target ≤ 1.2: {verdict(ratio_native <= 1.2)}), litellm engine "
      f"{med['e_predict_litellm']:.2f} ms ({ratio_litellm:.2f}× PiGatewayLM, target ≥ 2×: {verdict(ratio_litellm >= 2)}). "
      f"The litellm engine's first call took {pc['litellm_first_call_ms']:,.0f} ms (its import).")
    if "per_call" in bg:
        w(f"- CPU during this section: ours {bg['per_call']['ours']:.0f} %, others {bg['per_call']['others']:.0f} % of a core.")
    w("")

    # ---- 2
    tt = d["ttft"]["paths"]
    w("## 2. Streaming: time to first token")
    w("")
    w(f"![time to first token]({imgs['ttft']})")
    w("")
    w("| path | median of round medians (ms) | p95 | p99 |")
    w("|---|---|---|---|")
    for k in TTFT_LABELS:
        if k in tt:
            w(f"| {TTFT_LABELS[k]} | {fmt(tt[k]['median_of_round_medians'], 3)} | {fmt(tt[k]['p95'], 3)} | {fmt(tt[k]['p99'], 3)} |")
    w("")
    w(f"TTFT overhead through the gateway: **{d['ttft']['overhead_ms']:.2f} ms** (target ≤ 1 ms: "
      f"{verdict(d['ttft']['overhead_ms'] <= t['ttft_overhead_max_ms'])}). ")
    w("")

    # ---- 3
    w("## 3. Throughput")
    w("")
    w(f"![throughput and latency by concurrency]({imgs['throughput']})")
    w("")
    w("| concurrency | req/s | p50 ms | p90 ms | p99 ms | max ms | errors | gateway CPU | upstream CPU | wrk CPU | bench (Python) CPU | others CPU |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in d["throughput"]["gateway"]:
        cpu = r["cpu_percent"]
        errs = sum(r["errors"].values())
        py = next((v for k, v in cpu.items() if k.startswith("bench")), None)
        w(f"| {r['connections']} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | {r['p90_ms']:.2f} | {r['p99_ms']:.2f} | "
          f"{r['max_ms']:.1f} | {errs} | {cpu.get('gateway', 0):.0f} % | {cpu.get('upstream', 0):.0f} % | "
          f"{cpu.get('wrk', 0):.0f} % | {fmt(py, 0)} % | {r['machine_cpu_percent']['others']:.0f} % |")
    up = d["throughput"]["upstream_direct_c32"]
    w("")
    w(f"**The load generator is not the bottleneck:** the same wrk straight at the upstream (c=32) did "
      f"{up['rps']:,.0f} req/s (p99 {up['p99_ms']:.2f} ms), "
      f"{up['rps'] / c32['rps'] if c32 else float('nan'):.0f}× the gateway's rate; against the gateway wrk used "
      f"{c32['cpu_percent'].get('wrk', 0) if c32 else 0:.0f} % of a core while the gateway's single JS thread used "
      f"{c32['cpu_percent'].get('gateway', 0) if c32 else 0:.0f} %. The gateway process is CPU-bound.")
    w("")

    # ---- 4
    w("## 4. Start-up")
    w("")
    w("| what | median | detail | target |")
    w("|---|---|---|---|")
    w(f"| `import aiipython` (in a fresh interpreter) | {su['import_ms']['median']:.1f} ms | "
      f"interpreter + import {su['interpreter_with_import_ms']:.0f} ms vs bare interpreter {su['bare_interpreter_ms']:.0f} ms; "
      f"heavy modules loaded by the import: {', '.join(su['heavy_modules_loaded']) or 'none'} | ≤ 150 ms {verdict(su['import_ms']['median'] <= 150)} |")
    w(f"| gateway spawn → ready, warm node_modules | {su['spawn_ready_ms']['median']:.0f} ms | "
      f"min {su['spawn_ready_ms']['min']:.0f}, max {su['spawn_ready_ms']['max']:.0f}; first start in a process "
      f"(incl. `node --version`) {su['first_in_process_ms']:.0f} ms; close {su['close_ms_median']:.0f} ms | ≤ 0.8 s {verdict(spawn_s <= 0.8)} |")
    npm = su.get("npm_ci_cold")
    if npm:
        if "error" in npm:
            w(f"| first `npm ci` into an empty cache | failed | {npm['error']} | — |")
        else:
            w(f"| first `npm ci` into an empty cache (once) | {npm['seconds']:.1f} s | {npm['installed_mb']} MB, "
              f"{npm['top_level_packages']} top-level packages; {npm['npm_download_cache']} | (no target) |")
    else:
        w("| first `npm ci` into an empty cache | skipped (`--skip-npm-ci`) | | |")
    w("")
    top = su.get("importtime_top") or []
    if top:
        w("Heaviest imports under `import aiipython` (`-X importtime`, cumulative): "
          + ", ".join(f"`{x['module']}` {x['cumulative_ms']} ms" for x in top[:5]) + ".")
        w("")

    # ---- 5
    w("## 5. Memory")
    w("")
    w(f"![sidecar memory]({imgs['memory']})")
    w("")
    w(f"- RSS at ready: **{mem['rss_mb_at_ready']:.0f} MB**; idle after the warm-up calls: {mem['rss_mb_idle_after_warmup']:.0f} MB.")
    for i, b in enumerate(blocks):
        w(f"- Block {i + 1}: {b['requests']:,} requests at c=32 ({b['rps']:,.0f} req/s, p99 {b['p99_ms']:.1f} ms): "
          f"peak RSS {b['peak_rss_mb']:.0f} MB, {b['rss_mb_after']:.0f} MB after.")
    w(f"- Growth over the second block: **{growth:+.1f} %** — {'flat' if growth < 10 else 'NOT flat'}.")
    if heap_after is not None:
        before = heap["before_gc"]
        w(f"- Heap after {total_blocks:,} requests: {before['heapUsed'] / 2**20:.0f} MB used of "
          f"{before['heapTotal'] / 2**20:.0f} MB before a forced GC, **{heap_after / 2**20:.0f} MB used after it** "
          f"(RSS then {mem['rss_mb_after_gc']:.0f} MB): the RSS rise under load is V8 keeping garbage and heap "
          "space until it needs to collect, not retained objects.")
    elif heap.get("error"):
        w(f"- Heap: not read ({heap['error']}).")
    w(f"- Peak RSS during the throughput runs (up to c=128): {mem['peak_rss_mb_under_load']:.0f} MB; "
      f"{mem['rss_mb_after_all_load']:.0f} MB after them.")
    w("")

    # ---- profiles
    prof = d.get("profile")
    if prof:
        w("## Where the time goes (profiles)")
        w("")
        gp = prof.get("gateway_cpuprof")
        if gp:
            run = prof["gateway_cpuprof_run"]
            w(f"**Gateway under wrk c=32** (`node --cpu-prof`, {gp['busy_ms']:,.0f} ms of busy samples from the "
              f"load window only; this profiled run did {run['rps']:,.0f} req/s). Self time, with native frames "
              "(syscalls like `writev`, JSON, microtasks) charged to the JS package that called them, "
              "and inclusive time (the share of samples with that package anywhere on the stack):")
            w("")
            w("| category | self + native it called | inclusive |")
            w("|---|---|---|")
            incl = gp.get("inclusive_by_category_pct_of_busy", {})
            for k, val in list(gp["attributed_by_category_pct_of_busy"].items())[:14]:
                w(f"| {k} | {val:.1f} % | {fmt(incl.get(k), 1)} % |")
            w("")
            w("Top self-time functions:")
            w("")
            w("| % of busy | function | where | called from |")
            w("|---|---|---|---|")
            for f in gp["top_self_functions"][:12]:
                w(f"| {f['pct_of_busy']:.1f} | `{f['function']}` | {f['category']} | {f.get('called_from') or ''} |")
            w("")
        ll = prof.get("log_level")
        if ll:
            info, warn = ll["info (default)"], ll["warn"]
            w(f"**Per-request log line** (the gateway writes one JSON line per request to stderr at the default "
              f"level `info`; the Python parent drains it): sequential PiGatewayClient median "
              f"{info['median_of_round_medians']:.3f} ms at `info` vs {warn['median_of_round_medians']:.3f} ms with "
              f"`AIIPYTHON_GATEWAY_LOG_LEVEL=warn`; at c=32 the `warn` gateway did {ll['warn_c32']['rps']:,.0f} req/s "
              f"(p99 {ll['warn_c32']['p99_ms']:.1f} ms) vs {c32['rps'] if c32 else 0:,.0f} at `info` above.")
            w("")
        for key, title in (("python_b_client", "PiGatewayClient.complete"),
                           ("python_c_predict_pigatewaylm", "dspy.Predict on PiGatewayLM"),
                           ("python_d_predict_native", "dspy.Predict on DSPy's native route")):
            pp = prof.get(key)
            if not pp:
                continue
            pk = ", ".join(f"{k} {val:.0f} %" for k, val in list(pp["self_by_package_pct"].items())[:7])
            w(f"**Python, {title}** (cProfile, {pp['calls']} calls, {pp['wall_ms_per_call_profiled']:.2f} ms/call "
              f"under the profiler) — self time by package: {pk}.")
            w("")
    findings = d.get("findings")
    if findings:
        w("## Findings and recommended fixes")
        w("")
        for f in findings:
            w(f"- {f}")
        w("")
    return "\n".join(L) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", default=str(REPO / "docs" / "benchmarks.json"))
    ap.add_argument("--md", default=None)
    args = ap.parse_args()
    src = Path(args.json)
    d = json.loads(src.read_text())
    md = Path(args.md) if args.md else src.with_suffix(".md")
    imgs = charts(d, md.parent / "benchmarks")
    md.write_text(page(d, imgs))
    print(f"wrote {md} and {md.parent / 'benchmarks'}/*.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
