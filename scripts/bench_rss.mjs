// scripts/bench helper: where the gateway's idle RSS comes from, module group by module group, in
// one fresh Node process. Prints one JSON line: {"steps": [{"step", "group", "rss_mb", "heap_used_mb"}, ...]}.
//
//   node scripts/bench_rss.mjs --app <dir holding node_gateway/; node_modules/ there or above> --agent-dir <dir>
//
// It loads what node_gateway/server.mjs loads, in the same order, one group at a time, so each
// step's RSS delta is that group's share: Node's own HTTP/net modules, undici (dispatcher.mjs), fastify, the gateway's own modules (app.mjs and its routes), pi-ai's index,
// pi-ai's provider catalogs (providers/all), pi-ai's compat API registry, the pi-coding-agent
// modules pi_adapter.mjs takes by path (model-runtime, auth-storage, settings-manager,
// model-resolver; never the package's index), then pi_adapter.mjs itself, pi's runtime created
// over the agent dir, the app built and listening as server.mjs does (acceptors.mjs), and last
// the memory-reducing GC an idle gateway runs after 1 s (idle_memory.mjs). Deltas are not
// additive in a strict sense: V8 grows its heap (mostly the young generation) in steps. Whatever a step imports that an
// earlier one already loaded costs nothing there. No forced GC (no --expose-gc): RSS is what the
// OS sees, as psutil reads it for the gateway.

import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { pathToFileURL } from "node:url";

const { values } = parseArgs({ options: { app: { type: "string" }, "agent-dir": { type: "string" } } });
const steps = [];
const mb = (n) => Math.round(n / 104857.6) / 10;
const mark = (step, group) => {
  const m = process.memoryUsage();
  steps.push({ step, group, rss_mb: mb(m.rss), heap_used_mb: mb(m.heapUsed) });
};

function modulesDir(from) {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, "node_modules"))) return join(dir, "node_modules");
    if (dirname(dir) === dir) throw new Error(`no node_modules above ${from}`);
  }
}
const MODULES = modulesDir(values.app);
// As server.mjs: the install's start-up bundles first (prebundle.mjs), when it has them.
const prebundle = join(values.app, "node_gateway", "prebundle.mjs");
if (existsSync(prebundle)) (await import(pathToFileURL(prebundle).href)).usePrebundled({ root: dirname(MODULES) });

/** The file a package's `exports[subpath]` (import condition) points at, as a file: URL. */
function entry(pkg, subpath = ".") {
  const dir = join(MODULES, pkg);
  const meta = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
  const exp = meta.exports && typeof meta.exports === "object" && !Array.isArray(meta.exports) ? meta.exports : null;
  let target = exp ? (subpath in exp ? exp[subpath] : subpath === "." && !Object.keys(exp)[0]?.startsWith(".") ? exp : undefined) : meta.exports;
  let star = "";
  if (exp && target === undefined) { // a pattern such as "./providers/*"
    const key = Object.keys(exp).find((k) => k.endsWith("*") && subpath.startsWith(k.slice(0, -1)));
    if (key) [target, star] = [exp[key], subpath.slice(key.length - 1)];
  }
  const pick = (t) => (typeof t === "string" ? t : t?.import ? pick(t.import) : t?.default ? pick(t.default) : undefined);
  const rel = pick(target)?.replace("*", star) ?? (subpath === "." ? meta.main ?? "index.js" : subpath);
  return pathToFileURL(join(dir, rel)).href;
}
const gw = (name) => pathToFileURL(join(values.app, "node_gateway", name)).href;

mark("node started", "node");
await Promise.all(["node:http", "node:net", "node:crypto", "node:zlib", "node:cluster", "node:stream"].map((m) => import(m)));
mark("+ node:http, net, crypto, zlib, cluster", "node:http and friends");
const { installDispatcher } = await import(gw("dispatcher.mjs"));
installDispatcher();
mark("+ undici (dispatcher.mjs)", "undici");
await import(entry("fastify"));
mark("+ fastify", "fastify");
const { buildApp, createLogger } = await import(gw("app.mjs"));
mark("+ gateway modules (app.mjs, routes)", "ours");
await import(entry("@earendil-works/pi-ai"));
mark("+ pi-ai index", "pi-ai");
await import(entry("@earendil-works/pi-ai", "./providers/all"));
mark("+ pi-ai provider catalogs (providers/all)", "pi catalogs");
await import(entry("@earendil-works/pi-ai", "./compat"));
mark("+ pi-ai compat (API registry)", "pi-ai");
const agentEntry = entry("@earendil-works/pi-coding-agent"); // resolved, never imported (its TUI)
await Promise.all(["./core/model-runtime.js", "./core/auth-storage.js", "./core/settings-manager.js", "./core/model-resolver.js"]
  .filter((p) => existsSync(new URL(p, agentEntry)))
  .map((p) => import(new URL(p, agentEntry).href)));
mark("+ pi-coding-agent model-runtime, auth-storage, settings-manager, model-resolver", "pi model runtime");
const { createAdapter } = await import(gw("pi_adapter.mjs"));
mark("+ pi_adapter.mjs (rest)", "ours");
const adapter = await createAdapter({ agentDir: values["agent-dir"] });
mark("+ pi runtime created (models.json, auth)", "pi model runtime");
const app = buildApp({ adapter, token: "x".repeat(32), logger: createLogger({ level: "silent" }) });
const { listenWithAcceptors } = await import(gw("acceptors.mjs"));
const listening = await listenWithAcceptors(app, { host: "127.0.0.1", port: 0 });
mark("+ gateway app built and listening", "ours");
// What an idle gateway gives back once it has been idle for 1 s (idle_memory.mjs).
const idle = steps.length;
const { releaseStartupMemory } = await import(gw("idle_memory.mjs"));
await new Promise((resolve) => releaseStartupMemory({ activity: () => 0, busy: () => false, idleMs: 1, onDone: resolve }));
mark("+ idle: one memory-reducing GC (idle_memory.mjs)", "idle GC");
listening.close();
await app.close();
process.stdout.write(`${JSON.stringify({ steps })}\n`);
process.exit(0);
