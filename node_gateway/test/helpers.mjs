// Shared test helpers: a temporary pi agent dir, the fake OpenAI upstream, the gateway
// in-process on a loopback socket or as a real child process, and small HTTP/SSE clients.

import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildApp, createLogger } from "../app.mjs";
import { installDispatcher } from "../dispatcher.mjs";
import { createAdapter } from "../pi_adapter.mjs";

export { startFakeUpstream, DEFAULT_USAGE } from "./fake_upstream.mjs";

export const GATEWAY_DIR = dirname(dirname(fileURLToPath(import.meta.url)));
export const SERVER = join(GATEWAY_DIR, "server.mjs");
export const UPSTREAM_KEY = "sk-test-upstream-key-0123456789";
export const TOKEN = "test-gateway-token-abcdef0123456789";
export const ADMIN_TOKEN = "test-gateway-admin-token-9876543210fedcba";

/** The pi version package.json pins; the installed pi-coding-agent must be exactly it. */
export const PI_VERSION = JSON.parse(readFileSync(join(dirname(GATEWAY_DIR), "package.json"), "utf8")).dependencies[
  "@earendil-works/pi-coding-agent"
];

/** Model ids the fake upstream gives behaviours to (see fake_upstream.mjs). */
export const FAKE_MODEL_IDS = [
  "ok",
  "tool-call",
  "fail-500",
  "rate-429",
  "auth-401",
  "overflow-400",
  "echo-key-401",
  "echo-key-after-content",
  "hang",
  "malformed",
  "malformed-after-content",
  "disconnect",
  "stall",
];

/** A models.json provider block for an openai-completions upstream at `url`. */
export function upstreamProvider(url, { apiKey = UPSTREAM_KEY, ids = FAKE_MODEL_IDS, model = {} } = {}) {
  const block = {
    api: "openai-completions",
    baseUrl: url,
    models: ids.map((id) => ({
      id,
      input: ["text", "image"],
      contextWindow: 32768,
      maxTokens: 1024,
      cost: { input: 1, output: 2, cacheRead: 0.5, cacheWrite: 0 },
      compat: { supportsStore: false, supportsDeveloperRole: false, maxTokensField: "max_tokens" },
      ...model,
    })),
  };
  if (apiKey !== null) block.apiKey = apiKey;
  return block;
}

/** A provider `think` of one reasoning model `reasoning` (sends reasoning_effort) on the fake upstream. */
export function reasoningProvider(url) {
  return upstreamProvider(url, {
    ids: ["reasoning"],
    model: { reasoning: true, compat: { supportsStore: false, supportsDeveloperRole: false, maxTokensField: "max_tokens", supportsReasoningEffort: true } },
  });
}

/** A temporary pi agent dir with models.json / auth.json / settings.json. Removed on process exit. */
export function makeAgentDir({ providers, auth, settings } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "aiipython-gw-"));
  if (providers) writeFileSync(join(dir, "models.json"), JSON.stringify({ providers }, null, 2));
  if (auth) writeFileSync(join(dir, "auth.json"), JSON.stringify(auth), { mode: 0o600 });
  if (settings) writeFileSync(join(dir, "settings.json"), JSON.stringify(settings));
  process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * The gateway in-process on 127.0.0.1:0. `setup(adapter)` may register providers (pi's faux
 * provider) before it listens. Log lines are kept in `logs` (strings) instead of stderr.
 */
export async function startGateway({
  agentDir = makeAgentDir(),
  providers,
  setup,
  token = TOKEN,
  adminToken = ADMIN_TOKEN,
  env,
  ...appOptions
} = {}) {
  installDispatcher();
  const adapter = await createAdapter({ agentDir, providers, env });
  if (setup) await setup(adapter);
  const logs = [];
  const app = buildApp({ adapter, token, adminToken, logger: createLogger({ write: (line) => logs.push(line) }), ...appOptions });
  const url = await app.listen({ host: "127.0.0.1", port: 0 });
  return {
    app,
    adapter,
    url,
    token,
    logs,
    agentDir,
    request: (path, init) => request(url, path, { token, ...init }),
    /** A request with the admin token (PUT /providers and other `admin: true` routes). */
    admin: (path, init) => request(url, path, { ...init, token: adminToken }),
    close: () => app.gateway.shutdown(),
  };
}

/** fetch with the bearer token; JSON bodies; returns {status, headers, body(json|text), res}. */
export async function request(base, path, { token = TOKEN, method, json, headers = {}, signal } = {}) {
  const init = { method: method ?? (json === undefined ? "GET" : "POST"), headers: { ...headers }, signal };
  if (token) init.headers.authorization = `Bearer ${token}`;
  if (json !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  const res = await fetch(`${base}${path}`, init);
  const text = await res.text();
  let body = text;
  if ((res.headers.get("content-type") ?? "").includes("application/json")) body = JSON.parse(text);
  return { status: res.status, headers: res.headers, body, text };
}

/** Parse an SSE body into [{event, data}] (data JSON-decoded). LF-only framing, like the Python side. */
export function parseSSE(text) {
  const frames = [];
  for (const block of text.split("\n\n")) {
    if (!block.trim()) continue;
    let event = "message";
    let data = "";
    for (const line of block.split("\n")) {
      if (line.startsWith("event: ")) event = line.slice(7);
      else if (line.startsWith("data: ")) data += line.slice(6);
    }
    frames.push({ event, data: JSON.parse(data), raw: block });
  }
  return frames;
}

/** A chat body for `model` with one user message. */
export function chat(model, extra = {}) {
  return { model, messages: [{ role: "user", content: "Say hello." }], ...extra };
}

/**
 * The real server as a child process. Resolves after the readiness line with
 * {child, ready, stdout(), stderr(), exited}; rejects if it exits first.
 */
export async function spawnGateway({ env = {}, args = [] } = {}) {
  const child = spawn(process.execPath, [SERVER, ...args], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout.setEncoding("utf8");
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (d) => {
    err += d;
  });
  const exited = once(child, "exit").then(([code, signal]) => ({ code, signal }));
  const ready = await new Promise((resolve, reject) => {
    const onData = (d) => {
      out += d;
      const nl = out.indexOf("\n");
      if (nl >= 0) {
        child.stdout.off("data", onData);
        child.stdout.on("data", (more) => {
          out += more;
        });
        resolve(JSON.parse(out.slice(0, nl)));
      }
    };
    child.stdout.on("data", onData);
    exited.then(({ code }) => reject(new Error(`gateway exited (${code}) before ready: ${err}`)));
  });
  return { child, ready, stdout: () => out, stderr: () => err, exited };
}
