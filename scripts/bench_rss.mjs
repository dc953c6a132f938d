// scripts/bench helper: where the gateway's idle RSS comes from, module by module, in one fresh
// Node process. Prints one JSON line: {"steps": [{"step", "rss_mb", "heap_used_mb"}, ...]}.
//
//   node scripts/bench_rss.mjs --app <dir holding node_gateway/; node_modules/ there or above> --agent-dir <dir>
//
// The packages are imported from the installed gateway's node_modules in the order the gateway
// loads them (undici, fastify, pi-ai, pi-coding-agent), then pi's runtime is created and the app
// built, as server.mjs does. A forced-GC-free reading (no --expose-gc): RSS is what the OS sees.

import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { pathToFileURL } from "node:url";

const { values } = parseArgs({ options: { app: { type: "string" }, "agent-dir": { type: "string" } } });
const steps = [];
const mb = (n) => Math.round(n / 104857.6) / 10;
const mark = (step) => {
  const m = process.memoryUsage();
  steps.push({ step, rss_mb: mb(m.rss), heap_used_mb: mb(m.heapUsed) });
};

function modulesDir(from) {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, "node_modules"))) return join(dir, "node_modules");
    if (dirname(dir) === dir) throw new Error(`no node_modules above ${from}`);
  }
}
const MODULES = modulesDir(values.app);

function entry(pkg) {
  const dir = join(MODULES, pkg);
  const meta = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
  const dot = meta.exports && typeof meta.exports === "object" ? meta.exports["."] ?? meta.exports : meta.exports;
  const rel = typeof dot === "string" ? dot : dot?.import ?? dot?.default ?? meta.main ?? "index.js";
  return pathToFileURL(join(dir, rel)).href;
}

mark("node started");
await import(entry("undici"));
mark("+ undici");
await import(entry("fastify"));
mark("+ fastify");
await import(entry("@earendil-works/pi-ai"));
mark("+ @earendil-works/pi-ai");
await import(entry("@earendil-works/pi-coding-agent"));
mark("+ @earendil-works/pi-coding-agent");
const gw = (name) => pathToFileURL(join(values.app, "node_gateway", name)).href;
const { installDispatcher } = await import(gw("dispatcher.mjs"));
installDispatcher();
const { createAdapter } = await import(gw("pi_adapter.mjs"));
const adapter = await createAdapter({ agentDir: values["agent-dir"] });
mark("+ pi runtime created (models.json, auth)");
const { buildApp, createLogger } = await import(gw("app.mjs"));
const app = buildApp({ adapter, token: "x".repeat(32), logger: createLogger({ level: "silent" }) });
await app.listen({ host: "127.0.0.1", port: 0 });
mark("+ gateway app built and listening");
await app.close();
process.stdout.write(`${JSON.stringify({ steps })}\n`);
process.exit(0);
