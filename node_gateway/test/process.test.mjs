// The real server as a child process: start-up contract, readiness line, stdout discipline,
// extra providers from the environment, logs, and shutdown on stdin EOF / SIGTERM.

import assert from "node:assert/strict";
import { once } from "node:events";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { spawn } from "node:child_process";
import { PI_VERSION, SERVER, TOKEN, UPSTREAM_KEY, chat, makeAgentDir, parseSSE, request, spawnGateway, startFakeUpstream, upstreamProvider } from "./helpers.mjs";

let up;
before(async () => {
  up = await startFakeUpstream();
});
after(() => up?.close());

function gatewayEnv(extra = {}) {
  return {
    AIIPYTHON_GATEWAY_TOKEN: TOKEN,
    PI_CODING_AGENT_DIR: makeAgentDir(),
    AIIPYTHON_GATEWAY_PROVIDERS: JSON.stringify({ providers: { local: upstreamProvider(up.url, { ids: ["ok", "hang", "malformed"] }) } }),
    ...extra,
  };
}

test("without a token the server refuses to start (exit 2, nothing on stdout)", async () => {
  const child = spawn(process.execPath, [SERVER], { env: { PATH: process.env.PATH, HOME: process.env.HOME }, stdio: ["pipe", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout.on("data", (d) => {
    out += d;
  });
  child.stderr.on("data", (d) => {
    err += d;
  });
  const [code] = await once(child, "exit");
  assert.equal(code, 2);
  assert.equal(out, "");
  assert.match(err, /AIIPYTHON_GATEWAY_TOKEN/);
});

test("readiness line, extra providers, JSON logs; the readiness line is the only stdout output", async () => {
  const gw = await spawnGateway({ env: gatewayEnv() });
  try {
    assert.equal(gw.ready.event, "ready");
    assert.match(gw.ready.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(gw.ready.pid, gw.child.pid);
    assert.equal(gw.ready.version, "0.1.0");
    assert.equal(gw.ready.pi_version, PI_VERSION);
    assert.equal(gw.ready.node_version, process.version);

    const health = await request(gw.ready.url, "/health");
    assert.equal(health.status, 200);
    const c = await request(gw.ready.url, "/lm/complete", { json: chat("local/ok") });
    assert.equal(c.status, 200, c.text);
    const s = await request(gw.ready.url, "/lm/stream", { json: chat("ok") });
    assert.equal(parseSSE(s.text).at(-1).event, "done");
    const bad = await request(gw.ready.url, "/lm/complete", { json: chat("local/malformed") }); // the SDK prints to the console
    assert.equal(bad.status, 502);
    const models = await request(gw.ready.url, "/models");
    assert.ok(models.body.models.some((m) => m.provider === "local" && m.id === "ok" && m.available));
  } finally {
    gw.child.stdin.end();
  }
  const { code } = await gw.exited;
  assert.equal(code, 0);
  const stdout = gw.stdout();
  assert.equal(stdout.split("\n").filter(Boolean).length, 1, `stdout: ${stdout}`);
  assert.equal(JSON.parse(stdout).event, "ready");
  const lines = gw.stderr().split("\n").filter(Boolean);
  assert.ok(lines.length >= 5);
  for (const line of lines) {
    const obj = JSON.parse(line); // every stderr line is one JSON object
    assert.ok(obj.level && obj.time);
  }
  const requests = lines.map((l) => JSON.parse(l)).filter((o) => o.event === "request");
  assert.ok(requests.some((r) => r.route === "/lm/complete" && r.status === 200 && r.model === "local/ok"));
  assert.ok(!gw.stderr().includes(TOKEN), "no gateway token in logs");
  assert.ok(!gw.stderr().includes(UPSTREAM_KEY), "no API key in logs");
});

test("after stdin closes the process is gone within 1 s, aborting in-flight calls", async () => {
  const gw = await spawnGateway({ env: gatewayEnv() });
  const upstreamSawClose = new Promise((resolve) => up.events.once("aborted", resolve));
  const inflight = request(gw.ready.url, "/lm/complete", { json: chat("local/hang") }).catch((err) => ({ error: err }));
  await up.nextRequest(); // the call is upstream now
  const t0 = performance.now();
  gw.child.stdin.end();
  const { code } = await gw.exited;
  const elapsed = performance.now() - t0;
  assert.equal(code, 0);
  assert.ok(elapsed < 1000, `exited after ${elapsed} ms`);
  const r = await inflight;
  if (!r.error) {
    assert.equal(r.status, 503);
    assert.equal(r.body.error.type, "shutting_down");
  }
  await upstreamSawClose;
});

test("SIGTERM stops it (exit 0); providers can also come from a file", async () => {
  const dir = makeAgentDir();
  const file = join(dir, "providers.json");
  writeFileSync(file, JSON.stringify({ providers: { filed: upstreamProvider(up.url, { ids: ["ok"] }) } }));
  const gw = await spawnGateway({ env: gatewayEnv({ AIIPYTHON_GATEWAY_PROVIDERS: "", AIIPYTHON_GATEWAY_PROVIDERS_FILE: file }) });
  const c = await request(gw.ready.url, "/lm/complete", { json: chat("filed/ok") });
  assert.equal(c.status, 200, c.text);
  const t0 = performance.now();
  gw.child.kill("SIGTERM");
  const { code } = await gw.exited;
  assert.equal(code, 0);
  assert.ok(performance.now() - t0 < 1000);
});

test("a provider id in both AIIPYTHON_GATEWAY_PROVIDERS and the _FILE stops the start, naming it", async () => {
  const dir = makeAgentDir();
  const file = join(dir, "providers.json");
  writeFileSync(file, JSON.stringify({ providers: { local: upstreamProvider("http://127.0.0.1:9", { ids: ["a"] }) } }));
  const inEnv = JSON.stringify({ providers: { local: upstreamProvider("http://127.0.0.1:9", { ids: ["b"] }) } });
  const child = spawn(process.execPath, [SERVER], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...gatewayEnv({ AIIPYTHON_GATEWAY_PROVIDERS: inEnv, AIIPYTHON_GATEWAY_PROVIDERS_FILE: file }) },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let err = "";
  child.stderr.on("data", (d) => {
    err += d;
  });
  const [code] = await once(child, "exit");
  assert.equal(code, 2);
  assert.match(err, /provider 'local' is in both AIIPYTHON_GATEWAY_PROVIDERS and AIIPYTHON_GATEWAY_PROVIDERS_FILE/);
  assert.ok(!err.includes(UPSTREAM_KEY), err);
});

test("a broken providers value stops the start with a clear message that quotes none of it", async () => {
  const broken = '{"providers": {"x": {"apiKey": sk-provider-secret-0123456789}}}';
  const child = spawn(process.execPath, [SERVER], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...gatewayEnv({ AIIPYTHON_GATEWAY_PROVIDERS: broken }) },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let err = "";
  child.stderr.on("data", (d) => {
    err += d;
  });
  const [code] = await once(child, "exit");
  assert.equal(code, 2);
  assert.match(err, /AIIPYTHON_GATEWAY_PROVIDERS is not valid JSON: unexpected character at line 1 column 32/);
  assert.ok(!err.includes("sk-provider"), err);
});
