// PUT /providers: run-time registration (how Python points `local` at the started local model).

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { makeAgentDir, startFakeUpstream, startGateway, upstreamProvider } from "./helpers.mjs";

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

test("a provider registered at run time is listed and serves completions", async () => {
  const missing = await (await gw.request("/lm/complete", { json: { model: "late/ok", messages: [{ role: "user", content: "hi" }] } })).body;
  assert.equal(missing.error.type, "model_not_found");
  const res = await gw.request("/providers", { method: "PUT", json: { providers: { late: upstreamProvider(up.url, { ids: ["ok"] }) } } });
  assert.equal(res.status, 200);
  assert.deepEqual(res.body, { registered: ["late"] });
  const models = await (await gw.request("/models")).body;
  assert.ok(models.models.some((m) => m.provider === "late" && m.id === "ok" && m.available));
  const done = await gw.request("/lm/complete", { json: { model: "late/ok", messages: [{ role: "user", content: "hi" }] } });
  assert.equal(done.status, 200);
  assert.equal(done.body.message.stopReason, "stop");
});

test("re-registering replaces the provider's base URL", async () => {
  const dead = upstreamProvider("http://127.0.0.1:9/v1", { ids: ["ok"] });
  await gw.request("/providers", { method: "PUT", json: { providers: { moved: dead } } });
  const failed = await gw.request("/lm/complete", { json: { model: "moved/ok", messages: [{ role: "user", content: "hi" }] } });
  assert.equal(failed.status, 502);
  await gw.request("/providers", { method: "PUT", json: { providers: { moved: upstreamProvider(up.url, { ids: ["ok"] }) } } });
  const ok = await gw.request("/lm/complete", { json: { model: "moved/ok", messages: [{ role: "user", content: "hi" }] } });
  assert.equal(ok.status, 200);
});

test("a bad body or block is a 400 naming the problem, and the token is required", async () => {
  const empty = await gw.request("/providers", { method: "PUT", json: {} });
  assert.equal(empty.status, 400);
  const bad = await gw.request("/providers", { method: "PUT", json: { providers: { x: { models: [{}] } } } });
  assert.equal(bad.status, 400);
  assert.match(bad.body.error.message, /models\[0\]\.id/);
  const anon = await gw.request("/providers", { method: "PUT", json: { providers: {} }, token: null });
  assert.equal(anon.status, 401);
});
