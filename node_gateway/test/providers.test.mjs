// PUT /providers: run-time registration (how Python points `local` at the started local model),
// which only the admin token may do, with literal values only and all-or-nothing validation.

import assert from "node:assert/strict";
import { createServer } from "node:net";
import { after, before, test } from "node:test";
import { makeAgentDir, spawnGateway, startFakeUpstream, startGateway, upstreamProvider } from "./helpers.mjs";

let up;
let gw;

before(async () => {
  up = await startFakeUpstream();
  gw = await startGateway({ agentDir: makeAgentDir({}) });
});
after(async () => {
  await gw?.close();
  await up?.close();
});

const hi = (model) => ({ json: { model, messages: [{ role: "user", content: "hi" }] } });
const put = (providers, opts = {}) => gw.admin("/providers", { method: "PUT", json: { providers }, ...opts });

test("a provider registered at run time is listed and serves completions", async () => {
  const missing = await (await gw.request("/lm/complete", hi("late/ok"))).body;
  assert.equal(missing.error.type, "model_not_found");
  const res = await put({ late: upstreamProvider(up.url, { ids: ["ok"] }) });
  assert.equal(res.status, 200);
  assert.deepEqual(res.body, { registered: ["late"] });
  const models = await (await gw.request("/models")).body;
  assert.ok(models.models.some((m) => m.provider === "late" && m.id === "ok" && m.available));
  const done = await gw.request("/lm/complete", hi("late/ok"));
  assert.equal(done.status, 200);
  assert.equal(done.body.message.stopReason, "stop");
});

test("re-registering replaces the provider's base URL", async () => {
  await put({ moved: upstreamProvider("http://127.0.0.1:9/v1", { ids: ["ok"] }) });
  const failed = await gw.request("/lm/complete", hi("moved/ok"));
  assert.equal(failed.status, 502);
  await put({ moved: upstreamProvider(up.url, { ids: ["ok"] }) });
  const ok = await gw.request("/lm/complete", hi("moved/ok"));
  assert.equal(ok.status, 200);
});

test("the client token gets 403 forbidden on PUT /providers; no token 401; the client routes accept it", async () => {
  const client = await gw.request("/providers", { method: "PUT", json: { providers: { c: upstreamProvider(up.url, { ids: ["ok"] }) } } });
  assert.equal(client.status, 403);
  assert.equal(client.body.error.type, "forbidden");
  assert.match(client.body.error.message, /admin token/);
  assert.equal((await gw.request("/lm/complete", hi("c/ok"))).body.error.type, "model_not_found"); // nothing registered
  const anon = await gw.request("/providers", { method: "PUT", json: { providers: {} }, token: null });
  assert.equal(anon.status, 401);
  const wrong = await gw.request("/providers", { method: "PUT", json: { providers: {} }, token: "not-the-token" });
  assert.equal(wrong.status, 401);
  for (const path of ["/health", "/models", "/auth/status"]) assert.equal((await gw.request(path)).status, 200, path);
  assert.equal((await gw.admin("/health")).status, 200); // the admin token is a superset
});

test("a bad body or block is a 400 naming the problem", async () => {
  const empty = await gw.admin("/providers", { method: "PUT", json: {} });
  assert.equal(empty.status, 400);
  const bad = await put({ x: { models: [{}] } });
  assert.equal(bad.status, 400);
  assert.match(bad.body.error.message, /models\[0\]\.id/);
  const cases = [
    [{ api: "no-such-api", baseUrl: up.url, apiKey: "k", models: [{ id: "m" }] }, /api "no-such-api" is not an API pi knows/],
    [{ baseUrl: "file:///etc/passwd", models: [{ id: "m" }] }, /baseUrl must be an http\(s\) URL/],
    [{ ...upstreamProvider(up.url, { ids: ["m"] }), headers: { "x-a": "ok\r\nx-b: injected" } }, /CR, LF/],
    [{ ...upstreamProvider(up.url, { ids: ["m"] }), models: [{ id: "m", contextWindow: "big" }] }, /contextWindow/],
  ];
  for (const [block, message] of cases) {
    const res = await put({ y: block });
    assert.equal(res.status, 400, JSON.stringify(block));
    assert.match(res.body.error.message, message);
  }
});

test('"!command" and "$VAR" values are refused (keys, provider and model headers); "$$" is a literal "$"', async () => {
  const base = upstreamProvider(up.url, { ids: ["ok"] });
  const cases = [
    { ...base, apiKey: "!touch /tmp/aiipython-pwned" },
    { ...base, apiKey: "$HOME" },
    { ...base, apiKey: "prefix-${HOME}" },
    { ...base, headers: { "x-leak": "$OPENAI_API_KEY" } },
    { ...base, models: [{ id: "ok", headers: { "x-run": "!id" } }] },
    { ...base, apiKey: "dangling$" },
  ];
  for (const block of cases) {
    const res = await put({ sneaky: block });
    assert.equal(res.status, 400, JSON.stringify(block));
    assert.match(res.body.error.message, /!command|environment variable|\$\$/);
  }
  assert.equal((await gw.request("/lm/complete", hi("sneaky/ok"))).body.error.type, "model_not_found");
  const literal = await put({ dollar: { ...base, apiKey: "sk-with-$$-dollar" } });
  assert.equal(literal.status, 200);
});

test("a rejected PUT changes nothing: an earlier provider still serves, /auth/status stays 200", async () => {
  assert.equal((await put({ keep: upstreamProvider(up.url, { ids: ["ok"] }) })).status, 200);
  const res = await put({ keep: upstreamProvider("http://127.0.0.1:9/v1", { ids: ["ok"] }), broken: { ...upstreamProvider(up.url), apiKey: 5 } });
  assert.equal(res.status, 400);
  assert.match(res.body.error.message, /providers\.broken\.apiKey/);
  assert.equal((await gw.request("/auth/status")).status, 200);
  assert.equal((await gw.request("/lm/complete", hi("keep/ok"))).status, 200); // not re-pointed at :9
  assert.equal((await gw.request("/lm/complete", hi("broken/ok"))).body.error.type, "model_not_found");
});

test("3,000 providers are refused with a 400 naming the limit", async () => {
  const providers = {};
  for (let i = 0; i < 3000; i++) providers[`p${i}`] = { api: "openai-completions", baseUrl: up.url, apiKey: `k${i}`, models: [{ id: "m" }] };
  const res = await put(providers);
  assert.equal(res.status, 400);
  assert.match(res.body.error.message, /3000 providers in one registration; at most 64/);
  assert.equal((await gw.request("/health")).status, 200);
});

test("re-pointing a provider with credentials from the environment is refused; the listener gets nothing", async () => {
  let connections = 0;
  const listener = createServer((socket) => {
    connections++;
    socket.destroy();
  });
  await new Promise((resolve) => listener.listen(0, "127.0.0.1", resolve));
  const trap = `http://127.0.0.1:${listener.address().port}/v1`;
  const child = await spawnGateway({
    env: {
      AIIPYTHON_GATEWAY_TOKEN: "client-token-0123456789abcdef",
      AIIPYTHON_GATEWAY_ADMIN_TOKEN: "admin-token-0123456789abcdef",
      AIIPYTHON_GATEWAY_LOG_LEVEL: "warn",
      OPENAI_API_KEY: "sk-env-key-that-must-stay-home-0123",
      PI_CODING_AGENT_DIR: makeAgentDir({}),
    },
  });
  try {
    const url = child.ready.url;
    const admin = { authorization: "Bearer admin-token-0123456789abcdef", "content-type": "application/json" };
    for (const block of [{ baseUrl: trap }, { baseUrl: trap, api: "openai-completions", models: [{ id: "gpt-4o-mini" }] }]) {
      const res = await fetch(`${url}/providers`, { method: "PUT", headers: admin, body: JSON.stringify({ providers: { openai: block } }) });
      assert.equal(res.status, 400);
      assert.match((await res.json()).error.message, /provider "openai" is defined by pi/);
    }
    const status = await (await fetch(`${url}/auth/status`, { headers: admin })).json();
    assert.equal(status.providers.find((p) => p.provider === "openai").source, "env");
    assert.equal(connections, 0);
  } finally {
    child.child.stdin.end();
    await child.exited;
    listener.close();
  }
});
