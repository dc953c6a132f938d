"""scripts/bench: the OpenAI-compatible API (``/v1/chat/completions``) against other bridges (issue 11).

In one run, in front of the same canned upstream (``scripts/bench_upstream.mjs``), loopback only:

- **direct**: the upstream's own ``/v1/chat/completions``;
- **aiipython gateway**: ``/v1/chat/completions`` (pi over the ``fake`` provider of models.json);
- **LiteLLM proxy**: ``python -m litellm.proxy.proxy_cli`` from ``.venv-litellm-proxy`` (what
  ``scripts/setup --dev`` makes for tests/test_litellm_proxy.py), model ``openai/fake-model``;
- **pi-openai-proxy**: ``@victor-software-house/pi-openai-proxy`` run on Bun (npm package ``bun``),
  both installed only for the benchmark into ``<aiipython cache>/bench-peers`` (never the
  project's package.json or lockfile), reading the same models.json through pi.

Per call: one keep-alive ``httpx.Client`` per target, the same OpenAI request body, sequential,
non-streaming and streaming (read to ``[DONE]``); interleaved rounds with a rotating order, and
for each bridge the **median over rounds of (bridge round median / direct round median)**.
Target on our gateway: <= 2.0 for both. Throughput: wrk at concurrency 32 on ``/lm/complete`` and
``/v1/chat/completions`` of one gateway, alternating passes; target: /v1 within 10 % of native.

    .venv/bin/python scripts/bench_v1.py [--quick] [--merge docs/benchmarks.json]

Prints JSON; with ``--merge`` adds it as the ``v1`` key of that file (``bench_report.py`` renders it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent
REPO = SCRIPTS.parent
sys.path.insert(0, str(SCRIPTS))
sys.path.insert(0, str(REPO / "tests"))

from bench_run import MESSAGES, log, merge_into_json, pct, run_wrk, start_child, write_agent_dir  # noqa: E402
from litellm_proxy import PROXY_PYTHON, LiteLLMProxy, free_port  # noqa: E402

#: What scripts/bench installs for this comparison (exact versions: a rerun compares the same).
PEERS = {"@victor-software-house/pi-openai-proxy": "4.9.5", "bun": "1.4.5"}
RATIO_MAX = 2.0
V1_VS_NATIVE_MIN = 0.9
LITELLM_KEY = "sk-bench-litellm-master-0000"
PROXY_TOKEN = "bench-pi-openai-proxy-token"


# ---- pi-openai-proxy on Bun -------------------------------------------------------------------


def install_peers(runtime: Any, root: Path) -> dict[str, Any]:
    """npm install PEERS into ``root`` (once: a marker names the versions). Returns paths or an error."""
    marker = root / ".installed"
    want = json.dumps(PEERS, sort_keys=True)
    if not (marker.exists() and marker.read_text() == want):
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        (root / "package.json").write_text(json.dumps({"private": True, "dependencies": PEERS}, indent=1))
        env = dict(os.environ, PATH=f"{runtime.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
                   npm_config_update_notifier="false", npm_config_fund="false", npm_config_audit="false")
        log(f"v1: installing {', '.join(f'{k}@{v}' for k, v in PEERS.items())} into {root} (npm, once)")
        # Bun's postinstall puts its binary in place; the other packages' scripts do not matter here.
        out = subprocess.run([*runtime.npm, "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=root,
                             env=env, capture_output=True, text=True, timeout=900, check=False)
        if out.returncode != 0:
            return {"error": f"npm install failed ({out.returncode}): {(out.stdout + out.stderr)[-800:]}"}
        marker.write_text(want)
    bun = None
    for cand in ("node_modules/.bin/bun", "node_modules/bun/bin/bun.exe", "node_modules/@oven/bun-linux-x64/bin/bun"):
        path = root / cand
        if path.exists():
            ok = subprocess.run([str(path), "--version"], capture_output=True, text=True, check=False)
            if ok.returncode == 0:
                bun = (path, ok.stdout.strip())
                break
    if bun is None:
        return {"error": "the npm package bun installed no runnable binary (its postinstall did not run?)"}
    pkg = root / "node_modules/@victor-software-house/pi-openai-proxy"
    meta = json.loads((pkg / "package.json").read_text())
    pi_ai = json.loads((root / "node_modules/@mariozechner/pi-ai/package.json").read_text())["version"]
    return {"bun": str(bun[0]), "bun_version": bun[1], "entry": str(pkg / meta["bin"]["pi-openai-proxy"]),
            "version": meta["version"], "pi_ai_version": pi_ai}


class Server:
    """A child HTTP server, ready when a line of its output contains ``ready_text`` (never a sleep)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], ready_text: str, timeout: float = 120,
                 cwd: Path | None = None) -> None:
        self.name = name
        self.output: deque[str] = deque(maxlen=100)
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, env=env, cwd=cwd)
        ready = threading.Event()

        def read() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.output.append(line.rstrip("\n"))
                if ready_text in line:
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(timeout) or self.proc.poll() is not None:
            code = self.proc.poll()
            self.close()
            tail = " | ".join(line.strip() for line in list(self.output)[-4:] if line.strip())
            exited = f" (exit code {code})" if code is not None else ""
            raise RuntimeError(f"{name} did not start within {timeout:.0f} s{exited}; its last lines: {tail[-600:]}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


# ---- the run ----------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--merge", help="add the figures to this benchmarks.json as its 'v1' key")
    args = ap.parse_args()
    q = args.quick
    rounds, n, warm = (3, 40, 20) if q else (7, 120, 60)
    n_litellm = 15 if q else 40  # ~10 ms a call: fewer per round, same number of rounds
    tput_s, passes = (2, 1) if q else (4, 3)
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ["AIIPYTHON_LOCAL_MODEL"] = "off"
    tmp = Path(tempfile.mkdtemp(prefix="aiipython-bench-v1-"))
    agent = tmp / "agent"
    os.environ["PI_CODING_AGENT_DIR"] = str(agent)

    import httpx

    from aiipython._gateway import start_gateway
    from aiipython._node import cache_root, find_node
    from aiipython._settings import load_settings

    settings = load_settings()
    runtime = find_node(settings)
    results: dict[str, Any] = {"quick": q, "targets": {"ratio_max": RATIO_MAX, "v1_vs_native_min": V1_VS_NATIVE_MIN},
                               "client": "httpx.Client, one keep-alive connection per target, sequential"}
    closers: list[Callable[[], None]] = []  # stopped in reverse order
    try:
        upstream = start_child("bench_upstream",
                               [str(runtime.node), str(SCRIPTS / "bench_upstream.mjs"), "--port", "0"])
        closers.append(upstream.close)
        up_url = upstream.info["url"]
        write_agent_dir(agent, up_url)
        gw = start_gateway(load_settings(), progress=False)
        closers.append(gw.close)

        targets: dict[str, dict[str, Any]] = {
            "direct": {"url": up_url, "model": "fake-model", "token": None},
            "aiipython": {"url": gw.url + "/v1", "model": "fake/fake-model", "token": gw.token, "pid": gw.pid},
        }
        skipped: dict[str, str] = {}

        log("v1: starting the LiteLLM proxy")
        try:
            lp = LiteLLMProxy([{"model_name": "fake-model", "litellm_params": {
                "model": "openai/fake-model", "api_base": up_url, "api_key": "sk-bench-not-a-secret"}}],
                master_key=LITELLM_KEY, workdir=tmp).start()
            closers.append(lp.stop)
            version = subprocess.run([str(PROXY_PYTHON), "-c", "import importlib.metadata as m; "
                                      "print(m.version('litellm'))"], capture_output=True, text=True).stdout.strip()
            targets["litellm_proxy"] = {"url": lp.url + "/v1", "model": "fake-model",
                                        "token": LITELLM_KEY, "pid": lp.pid, "version": version}
        except RuntimeError as exc:  # no .venv-litellm-proxy, or it did not start
            skipped["litellm_proxy"] = str(exc)[:600]

        peers = install_peers(runtime, cache_root(settings) / "bench-peers")
        if "error" in peers:
            skipped["pi_openai_proxy"] = peers["error"]
        else:
            port = free_port()
            env = dict(os.environ, PI_CODING_AGENT_DIR=str(agent), PI_PROXY_HOST="127.0.0.1", PI_PROXY_PORT=str(port),
                       PI_PROXY_AUTH_TOKEN=PROXY_TOKEN, PI_OFFLINE="1")
            log(f"v1: starting pi-openai-proxy {peers['version']} on Bun {peers['bun_version']}")
            try:
                px = Server("pi-openai-proxy", [peers["bun"], peers["entry"]], env, "listening on", cwd=tmp)
                closers.append(px.close)
                targets["pi_openai_proxy"] = {"url": f"http://127.0.0.1:{port}/v1", "model": "fake-model",
                                              "token": PROXY_TOKEN, "pid": px.pid, "version": peers["version"],
                                              "runtime": f"Bun {peers['bun_version']}",
                                              "pi_ai_version": peers["pi_ai_version"]}
            except RuntimeError as exc:
                skipped["pi_openai_proxy"] = str(exc)[:600]
        results["skipped"] = skipped

        clients = {name: httpx.Client(headers={"authorization": f"Bearer {t['token']}"} if t["token"] else {},
                                      timeout=30) for name, t in targets.items()}

        def call(name: str, stream: bool) -> Callable[[], None]:
            t, c = targets[name], clients[name]
            url = t["url"] + "/chat/completions"
            body = {"model": t["model"], "messages": MESSAGES, **({"stream": True} if stream else {})}

            def one() -> None:
                if stream:
                    with c.stream("POST", url, json=body) as r:
                        tail = b""
                        for chunk in r.iter_raw():
                            tail = (tail + chunk)[-64:]
                        if r.status_code != 200 or b"[DONE]" not in tail:
                            raise RuntimeError(f"{name} stream: status {r.status_code}")
                else:
                    r = c.post(url, json=body)
                    if r.status_code != 200 or "Paris" not in r.json()["choices"][0]["message"]["content"]:
                        raise RuntimeError(f"{name}: status {r.status_code}: {r.text[:300]}")
            return one

        per_call: dict[str, Any] = {}
        for mode in ("non_stream", "stream"):
            fns = {name: call(name, mode == "stream") for name in targets}
            for name, fn in fns.items():
                for _ in range(warm if name != "litellm_proxy" else warm // 3):
                    fn()
            samples: dict[str, list[list[float]]] = {name: [] for name in fns}
            names = list(fns)
            log(f"v1: per-call {mode}: {len(names)} targets x {rounds} rounds x {n} calls")
            for r in range(rounds):
                for name in names[r % len(names):] + names[: r % len(names)]:
                    k = n_litellm if name == "litellm_proxy" else n
                    out = []
                    for _ in range(k):
                        t0 = time.perf_counter_ns()
                        fns[name]()
                        out.append((time.perf_counter_ns() - t0) / 1e6)
                    samples[name].append(out)
            direct = [statistics.median(x) for x in samples["direct"]]
            rows = {}
            for name, rs in samples.items():
                meds = [statistics.median(x) for x in rs]
                pooled = [v for x in rs for v in x]
                row = {"median_of_round_medians_ms": round(statistics.median(meds), 4),
                       "p99_ms": round(pct(pooled, 99), 3), "n": len(pooled)}
                if name != "direct":
                    pairs = list(zip(meds, direct, strict=True))
                    row["ratio_median_of_rounds"] = round(statistics.median(b / d for b, d in pairs), 3)
                    row["added_ms_median_of_rounds"] = round(statistics.median(b - d for b, d in pairs), 4)
                rows[name] = row
            per_call[mode] = rows
        results["per_call"] = per_call

        # throughput at c=32 on one gateway: native /lm/complete vs /v1/chat/completions, alternating
        watch = {"gateway": gw.pid, "upstream": upstream.info["pid"]}
        native_body = json.dumps({"model": "fake/fake-model", "messages": MESSAGES})
        log("v1: throughput warm-up, c=32")
        run_wrk(gw.url + "/lm/complete", body=native_body, token=gw.token, connections=32, seconds=3 if q else 5,
                tmp=tmp, watch=watch)
        runs: dict[str, list[dict[str, Any]]] = {"/lm/complete": [], "/v1/chat/completions": []}
        for i in range(passes):
            for route in runs:
                log(f"v1: throughput pass {i + 1}/{passes}, {route} c=32 for {tput_s}s")
                runs[route].append(run_wrk(gw.url + route, body=native_body, token=gw.token, connections=32,
                                           seconds=tput_s, tmp=tmp, watch=watch))
        med = {route: statistics.median(r["rps"] for r in rs) for route, rs in runs.items()}
        results["throughput_c32"] = {
            "rps": {route: [r["rps"] for r in rs] for route, rs in runs.items()},
            "p99_ms": {route: [r["p99_ms"] for r in rs] for route, rs in runs.items()},
            "errors": {route: sum(sum(r["errors"].values()) for r in rs) for route, rs in runs.items()},
            "median_rps": med,
            "v1_over_native": round(med["/v1/chat/completions"] / med["/lm/complete"], 3),
        }
        # the other bridges at c=32 (one run each, for scale)
        peers_tp = {}
        for name in ("pi_openai_proxy", "litellm_proxy"):
            if name in targets:
                t = targets[name]
                log(f"v1: throughput {name} c=32 for {tput_s}s")
                peer_body = json.dumps({"model": t["model"], "messages": MESSAGES})
                r = run_wrk(t["url"] + "/chat/completions", body=peer_body,
                            token=t["token"], connections=32, seconds=tput_s, tmp=tmp, watch={name: t["pid"]})
                peers_tp[name] = {"rps": r["rps"], "p99_ms": r["p99_ms"], "errors": sum(r["errors"].values()),
                                  "cpu_percent": r["cpu_percent"].get(name)}
        results["throughput_c32"]["peers"] = peers_tp
        results["versions"] = {name: {k: v for k, v in t.items() if k in ("version", "runtime", "pi_ai_version")}
                               for name, t in targets.items() if name not in ("direct", "aiipython")}
        for c in clients.values():
            c.close()
    finally:
        for close in reversed(closers):
            with contextlib.suppress(Exception):
                close()
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(results, indent=1))
    if args.merge:
        merge_into_json(Path(args.merge), "v1", results)
    return 0


LABELS = {"aiipython": "aiipython gateway (Node)", "pi_openai_proxy": "pi-openai-proxy (Bun)",
          "litellm_proxy": "LiteLLM proxy", "direct": "direct to the upstream"}


def report(d: dict[str, Any]) -> list[str]:
    """The "OpenAI-compatible API" section of docs/benchmarks.md, as markdown lines."""
    out = ["## OpenAI-compatible API: `/v1/chat/completions` against other bridges", ""]
    vers = d.get("versions", {})
    out.append(f"Same canned upstream, same request, client: {d['client']}. Ratio = median over interleaved rounds of "
               "(bridge round median / direct round median); added = the same for the difference. "
               + "; ".join(f"{LABELS[k]}: {v.get('version')}" + (f" on {v['runtime']} (pi-ai {v['pi_ai_version']})"
                                                                 if v.get("runtime") else "")
                           for k, v in vers.items()) + ".")
    out.append("")
    out += ["| bridge | non-stream ms | ratio | added ms | stream ms | ratio | added ms |",
            "|---|---|---|---|---|---|---|"]
    pc = d["per_call"]
    for name in ("direct", "aiipython", "pi_openai_proxy", "litellm_proxy"):
        if name not in pc["non_stream"]:
            continue
        a, b = pc["non_stream"][name], pc["stream"][name]
        cell = lambda r, k, f: f.format(r[k]) if k in r else "—"  # noqa: E731
        out.append(f"| {LABELS[name]} | {a['median_of_round_medians_ms']:.3f} | "
                   f"{cell(a, 'ratio_median_of_rounds', '{:.2f}×')} | "
                   f"{cell(a, 'added_ms_median_of_rounds', '{:+.3f}')} | {b['median_of_round_medians_ms']:.3f} | "
                   f"{cell(b, 'ratio_median_of_rounds', '{:.2f}×')} | "
                   f"{cell(b, 'added_ms_median_of_rounds', '{:+.3f}')} |")
    out.append("")
    for name, why in d.get("skipped", {}).items():
        out.append(f"- **{LABELS.get(name, name)} not measured:** {why}")
    tp = d["throughput_c32"]
    med = tp["median_rps"]
    out.append(f"- Throughput at c=32 on one gateway, {len(tp['rps']['/lm/complete'])} alternating passes: native "
               f"`/lm/complete` {med['/lm/complete']:,.0f} req/s, "
               f"`/v1/chat/completions` {med['/v1/chat/completions']:,.0f} "
               f"req/s = {tp['v1_over_native']:.2f}× (target ≥ {d['targets']['v1_vs_native_min']}×)."
               + "".join(f" {LABELS[k]} at c=32: {v['rps']:,.0f} req/s (p99 {v['p99_ms']:.1f} ms, "
                         f"{v['errors']} errors)."
                         for k, v in tp.get("peers", {}).items()))
    out.append("")
    return out


if __name__ == "__main__":
    raise SystemExit(main())
