// scripts/bench helper: pi called in-process in Node (no HTTP hop), driven by JSON commands.
//
//   node scripts/bench_pi_inproc.mjs --app <dir holding node_gateway/> --agent-dir <pi agent dir> --upstream <url/v1>
//
// It loads the gateway's own modules from the installed app dir (the same files and the same
// node_modules the gateway runs), installs the gateway's undici dispatcher first (as server.mjs
// does), then prints one readiness line {"ready", "url", "pid", ...} (the Sidecar contract:
// aiipython._sidecar) and answers each command POSTed to that loopback URL as a JSON body, one at
// a time, until its stdin closes:
//   {"op": "complete", "mode": M, "n": N, "model": "fake/fake-model"} -> {"ms": [N sequential call times]}
//       M = "adapter": exactly what POST /lm/complete does minus HTTP: resolve, convertRequest,
//                      callOptions, ensureAuth, adapter.stream(...).events.result()
//           "pi":      pi's runtime.streamSimple(model, context, {maxRetries: 0}).result() alone
//           "fetch":   Node fetch (same dispatcher) POST to the upstream, body read: the Node floor
//   {"op": "ttft", "n": N, "model": "fake/fake-stream"} -> {"ttft_ms": [...], "total_ms": [...]}
//       time to pi's first text_delta event through the adapter
//   {"op": "heap", "pid": P} -> {"heap": {...}} or {"error": "..."}: activates the inspector of
//       process P with SIGUSR1 (127.0.0.1:9229), forces a full GC and reads process.memoryUsage()
//   {"op": "gc_start", "pid": P} / {"op": "gc_stop", "pid": P} -> {"gc": {kind: {count, total_ms, median_ms, max_ms}}}:
//       GC pauses of process P in between (a PerformanceObserver installed through the inspector)
//   {"op": "alloc_start", "pid": P} / {"op": "alloc_stop"} -> {"total_bytes", "by_category", "top_functions"}:
//       sampled allocations of process P between the two (including what GCs collected)
// Loopback only; every loop is bounded by N.

import { parseArgs } from "node:util";
import { createServer } from "node:http";
import { pathToFileURL } from "node:url";
import { join } from "node:path";

const { values } = parseArgs({
  options: {
    app: { type: "string" },
    "agent-dir": { type: "string" },
    upstream: { type: "string" },
  },
});
const gw = (name) => pathToFileURL(join(values.app, "node_gateway", name)).href;

const { installDispatcher } = await import(gw("dispatcher.mjs"));
installDispatcher(); // before pi loads and before any fetch, as server.mjs does
const { createAdapter } = await import(gw("pi_adapter.mjs"));
const { convertRequest } = await import(gw("convert.mjs"));
const adapter = await createAdapter({ agentDir: values["agent-dir"] });

const MESSAGES = [{ role: "user", content: "What is the capital of France?" }];
const body = (model) => ({ model, messages: MESSAGES });

async function adapterCall(model, onFirstText) {
  const request = body(model);
  const m = await adapter.resolve(request.model); // await: sync or async across gateway versions
  const { context, options, toolNames } = convertRequest(request, m);
  const { options: piOptions, usesFetch } = adapter.callOptions(m, options, toolNames);
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), 30000);
  try {
    await adapter.ensureAuth(m, controller.signal);
    const { events } = adapter.stream(m, context, piOptions, { signal: controller.signal, timeoutMs: 30000, usesFetch });
    if (onFirstText) {
      for await (const ev of events) {
        if (ev.type === "text_delta") onFirstText();
      }
    }
    const message = await events.result();
    if (message.stopReason === "error" || message.stopReason === "aborted") throw new Error(message.errorMessage);
    return message;
  } finally {
    clearTimeout(timer);
  }
}

async function piCall(model) {
  const m = await adapter.resolve(model);
  const { context } = convertRequest(body(model), m);
  const message = await adapter.runtime.streamSimple(m, context, { maxRetries: 0 }).result();
  if (message.stopReason === "error") throw new Error(message.errorMessage);
  return message;
}

const upstreamBody = JSON.stringify({ model: "fake-model", messages: MESSAGES, stream: true });
async function fetchCall() {
  const res = await fetch(`${values.upstream}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: "Bearer x" },
    body: upstreamBody,
  });
  await res.text();
}

async function timeN(n, fn) {
  const ms = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn();
    ms.push(performance.now() - t);
  }
  return ms;
}

/** Open the inspector of process `pid` (SIGUSR1 -> 127.0.0.1:9229); {send(method, params), close()}. */
async function inspector(pid) {
  process.kill(pid, "SIGUSR1");
  let target;
  for (let i = 0; i < 50 && !target; i++) {
    await new Promise((r) => setTimeout(r, 50));
    try {
      const list = await (await fetch("http://127.0.0.1:9229/json/list")).json();
      target = list.find((t) => t.webSocketDebuggerUrl);
    } catch {
      // not listening yet
    }
  }
  if (!target) throw new Error("the inspector did not open on 127.0.0.1:9229");
  const ws = new WebSocket(target.webSocketDebuggerUrl);
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error("inspector websocket failed"));
  });
  let id = 0;
  const pending = new Map();
  ws.onmessage = (e) => {
    const msg = JSON.parse(e.data);
    if (msg.id && pending.has(msg.id)) {
      pending.get(msg.id)(msg);
      pending.delete(msg.id);
    }
  };
  const send = (method, params = {}) =>
    new Promise((resolve) => {
      const mid = ++id;
      pending.set(mid, resolve);
      ws.send(JSON.stringify({ id: mid, method, params }));
    });
  return { send, close: () => ws.close() };
}

async function heap(pid) {
  let insp;
  try {
    insp = await inspector(pid);
  } catch (err) {
    return { error: err.message };
  }
  const read = async () => {
    const r = await insp.send("Runtime.evaluate", { expression: "JSON.stringify(process.memoryUsage())", returnByValue: true });
    return JSON.parse(r.result.result.value);
  };
  const before = await read();
  await insp.send("HeapProfiler.collectGarbage");
  const after = await read();
  insp.close();
  return { heap: { before_gc: before, after_gc: after } };
}

// Allocation sampling (every allocation, also what minor/major GCs collected): bytes by package.
let allocSession = null;
async function allocStart(pid) {
  allocSession = await inspector(pid);
  await allocSession.send("HeapProfiler.enable");
  await allocSession.send("HeapProfiler.startSampling", {
    samplingInterval: 16384,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
  return { started: true };
}

function category(url, fn) {
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (m) return `npm: ${m[1]}`;
  if (url.includes("/node_gateway/")) return "ours: node_gateway/*.mjs";
  if (url.startsWith("node:")) return "node internals";
  return url ? "other" : `native: ${fn || "(anonymous)"}`;
}

async function allocStop() {
  const r = await allocSession.send("HeapProfiler.stopSampling");
  allocSession.close();
  allocSession = null;
  const byCat = new Map();
  const byFn = new Map();
  let total = 0;
  // Native frames (JSON.parse, string concat) are charged to the nearest JS caller's package.
  const walk = (node, inherited) => {
    const { url, functionName, lineNumber } = node.callFrame;
    const own = url ? category(url, functionName) : inherited ?? category(url, functionName);
    if (node.selfSize) {
      total += node.selfSize;
      byCat.set(own, (byCat.get(own) ?? 0) + node.selfSize);
      const short = url ? `${functionName || "(anonymous)"} ${url.replace(/.*node_modules\//, "").replace(/.*\/node_gateway\//, "node_gateway/")}:${lineNumber + 1}` : `${functionName || "(native)"} [${own}]`;
      byFn.set(short, (byFn.get(short) ?? 0) + node.selfSize);
    }
    for (const c of node.children ?? []) walk(c, url ? own : inherited);
  };
  walk(r.result.profile.head, undefined);
  const top = (m, n) => [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, v]) => [k, v]);
  return { total_bytes: total, by_category: top(byCat, 20), top_functions: top(byFn, 15) };
}

// GC pauses of process P: a PerformanceObserver installed in it through the inspector.
const GC_START = `(() => {
  const { PerformanceObserver } = process.getBuiltinModule("node:perf_hooks");
  globalThis.__benchGc = [];
  globalThis.__benchGcObs?.disconnect();
  globalThis.__benchGcObs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) globalThis.__benchGc.push([e.detail?.kind ?? 0, e.duration]);
  });
  globalThis.__benchGcObs.observe({ entryTypes: ["gc"] });
  return "ok";
})()`;
const GC_STOP = `(() => {
  globalThis.__benchGcObs?.disconnect();
  const out = JSON.stringify(globalThis.__benchGc ?? []);
  globalThis.__benchGc = [];
  return out;
})()`;
async function gcEval(pid, expression) {
  const insp = await inspector(pid);
  try {
    const r = await insp.send("Runtime.evaluate", { expression, returnByValue: true });
    return r.result.result.value;
  } finally {
    insp.close();
  }
}

const GC_KINDS = { 1: "minor (scavenge)", 2: "major (mark-compact)", 4: "major (mark-compact)", 8: "incremental marking", 16: "weak callbacks" };

/** One command -> its JSON answer. */
async function answer(cmd) {
  if (cmd.op === "complete") {
    const model = cmd.model ?? "fake/fake-model";
    const fn = cmd.mode === "pi" ? () => piCall(model) : cmd.mode === "fetch" ? fetchCall : () => adapterCall(model);
    return { ms: await timeN(cmd.n, fn) };
  }
  if (cmd.op === "ttft") {
    const ttft = [];
    const total = [];
    for (let i = 0; i < cmd.n; i++) {
      const t = performance.now();
      let first;
      await adapterCall(cmd.model ?? "fake/fake-stream", () => {
        first ??= performance.now() - t;
      });
      total.push(performance.now() - t);
      ttft.push(first);
    }
    return { ttft_ms: ttft, total_ms: total };
  }
  if (cmd.op === "heap") return heap(cmd.pid);
  if (cmd.op === "gc_start") return { started: await gcEval(cmd.pid, GC_START) };
  if (cmd.op === "gc_stop") {
    const entries = JSON.parse(await gcEval(cmd.pid, GC_STOP));
    const by = {};
    for (const [kind, ms] of entries) (by[GC_KINDS[kind] ?? `kind ${kind}`] ??= []).push(ms);
    const summary = {};
    for (const [k, v] of Object.entries(by)) {
      v.sort((a, b) => a - b);
      summary[k] = { count: v.length, total_ms: v.reduce((a, b) => a + b, 0), median_ms: v[v.length >> 1], max_ms: v[v.length - 1] };
    }
    return { gc: summary };
  }
  if (cmd.op === "alloc_start") return allocStart(cmd.pid);
  if (cmd.op === "alloc_stop") return allocStop();
  return { error: `unknown op ${cmd.op}` };
}

const server = createServer(async (req, res) => {
  let body = "";
  for await (const chunk of req) body += chunk;
  let out;
  try {
    out = await answer(JSON.parse(body));
  } catch (err) {
    out = { error: String(err?.stack ?? err) };
  }
  res.writeHead(200, { "content-type": "application/json" });
  res.end(JSON.stringify(out));
});
server.listen(0, "127.0.0.1", () => {
  const url = `http://127.0.0.1:${server.address().port}/`;
  process.stdout.write(`${JSON.stringify({ ready: true, url, pid: process.pid, pi_version: adapter.piVersion, node_version: process.version })}\n`);
});
process.stdin.on("end", () => process.exit(0)); // the parent closed our stdin (or died)
process.stdin.resume();
