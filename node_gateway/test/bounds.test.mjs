// Bounded work per request: long model names, the close-match search, deeply nested bodies.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { chat, makeAgentDir, startFakeUpstream, startGateway, upstreamProvider } from "./helpers.mjs";

let up;
let gw;

before(async () => {
  up = await startFakeUpstream();
  gw = await startGateway({ agentDir: makeAgentDir({ providers: { up: upstreamProvider(up.url, { ids: ["ok"] }) } }) });
});
after(async () => {
  await gw?.close();
  await up?.close();
});

test("a 100k-character model name is a 400 naming the cap, and a concurrent /health answers", async () => {
  const huge = gw.request("/lm/complete", { json: chat("x".repeat(100000)) });
  const health = gw.request("/health");
  const [bad, ok] = await Promise.all([huge, health]);
  assert.equal(bad.status, 400);
  assert.equal(bad.body.error.type, "invalid_request");
  assert.match(bad.body.error.message, /100000 characters long; model names have at most 256/);
  assert.equal(ok.status, 200);
  for (const path of ["/lm/stream", "/lm/complete"]) {
    const res = await gw.request(path, { json: chat(`up/${"y".repeat(300)}`) });
    assert.equal(res.status, 400, path);
  }
});

test("the longest accepted unknown name still gets close matches from the whole catalog", async () => {
  const catalog = (await gw.request("/models")).body.models.length;
  assert.ok(catalog > 500, `pi's built-in catalog should be large, got ${catalog}`);
  const name = `up/ok${"z".repeat(250)}`; // 256 characters: the most work the search can get
  const res = await gw.request("/lm/complete", { json: chat(name) });
  assert.equal(res.status, 404);
  assert.deepEqual(res.body.error.candidates.slice(0, 1), ["up/ok"]); // substring match
  const typo = await gw.request("/lm/complete", { json: chat("up/okk") });
  assert.deepEqual(typo.body.error.candidates.slice(0, 1), ["up/ok"]);
});

/** POST raw JSON text (JSON.stringify itself overflows the stack on these bodies). */
async function postText(path, text) {
  const res = await fetch(`${gw.url}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${gw.token}`, "content-type": "application/json" },
    body: text,
  });
  return { status: res.status, body: await res.json() };
}

test("a deeply nested tool schema or message is a 400 naming the field, not a 502", async () => {
  const n = 20000;
  const schema = `${'{"type":"object","properties":{"a":'.repeat(n)}{"type":"string"}${"}}".repeat(n)}`;
  const tools = `[{"type":"function","function":{"name":"deep","parameters":${schema}}}]`;
  const res = await postText("/lm/complete", `{"model":"up/ok","messages":[{"role":"user","content":"hi"}],"tools":${tools}}`);
  assert.equal(res.status, 400);
  assert.match(res.body.error.message, /body\.tools nests arrays\/objects deeper than 64 levels/);
  const nested = `${"[".repeat(n)}"x"${"]".repeat(n)}`;
  const msg = await postText("/lm/stream", `{"model":"up/ok","messages":[{"role":"user","content":${nested}}]}`);
  assert.equal(msg.status, 400);
  assert.match(msg.body.error.message, /body\.messages nests/);
  const params = { type: "object", properties: { q: { type: "string" } } };
  const fine = await gw.request("/lm/complete", { json: chat("up/ok", { tools: [{ type: "function", function: { name: "f", parameters: params } }] }) });
  assert.equal(fine.status, 200);
});

test("/v1: a deeply nested Responses input is a 400 in OpenAI's envelope", async () => {
  const n = 20000;
  const nested = `${"[".repeat(n)}"x"${"]".repeat(n)}`;
  const res = await postText("/v1/responses", `{"model":"up/ok","input":${nested}}`);
  assert.equal(res.status, 400);
  assert.equal(res.body.error.type, "invalid_request_error");
  assert.equal(res.body.error.param, "input");
  assert.match(res.body.error.message, /deeper than 64 levels/);
});

test("/v1: a body over the limit is a 413 in OpenAI's envelope naming the limit; the gateway keeps serving", async () => {
  const small = await startGateway({ agentDir: gw.agentDir, bodyLimit: 65536 });
  try {
    const big = JSON.stringify({ model: "up/ok", messages: [{ role: "user", content: "x".repeat(200000) }] });
    const big2 = JSON.stringify({ model: "up/ok", input: "x".repeat(200000) });
    for (const [path, body] of [["/v1/chat/completions", big], ["/v1/responses", big2]]) {
      const res = await fetch(`${small.url}${path}`, {
        method: "POST",
        headers: { authorization: `Bearer ${small.token}`, "content-type": "application/json" },
        body,
      });
      assert.equal(res.status, 413, path);
      const { error } = await res.json();
      assert.equal(error.code, "request_too_large", path);
      assert.equal(error.type, "invalid_request_error", path);
      assert.ok("param" in error && "message" in error, path);
      assert.match(error.message, /larger than the limit of 65536 bytes/, path);
    }
    const ok = await small.request("/v1/chat/completions", { json: { model: "up/ok", messages: [{ role: "user", content: "hi" }] } });
    assert.equal(ok.status, 200, ok.text);
  } finally {
    await small.close();
  }
});
