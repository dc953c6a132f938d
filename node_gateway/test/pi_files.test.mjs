// Broken pi files: a corrupt auth.json does not switch off env keys and is named with position and
// reason only; a models.json that breaks while the gateway runs keeps the last good catalog.

import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { describeJsonError } from "../pi_files.mjs";
import { chat, makeAgentDir, spawnGateway, startFakeUpstream, startGateway, upstreamProvider } from "./helpers.mjs";

const STORED = "sk-stored-secret-in-auth-json-0123456789";

test("JSON errors give position and reason, never the text", () => {
  for (const text of [`{"openai": {"type": "api_key", "key": "${STORED}`, `{"k": ${STORED}}`, `{"k": "${STORED}",}`]) {
    let err;
    try {
      JSON.parse(text);
    } catch (e) {
      err = e;
    }
    const out = describeJsonError(text, err);
    assert.match(out, /at line 1 column \d+$/);
    assert.ok(!out.includes("sk-") && !out.includes("stored"), out);
  }
});

test("a corrupt auth.json leaves OPENAI_API_KEY configured, names auth.json, and quotes nothing", async () => {
  const agentDir = makeAgentDir();
  writeFileSync(join(agentDir, "auth.json"), `{"anthropic": {"type": "api_key", "key": "${STORED}"`, { mode: 0o600 });
  const child = await spawnGateway({
    env: {
      AIIPYTHON_GATEWAY_TOKEN: "client-token-0123456789abcdef",
      AIIPYTHON_GATEWAY_LOG_LEVEL: "info",
      OPENAI_API_KEY: "sk-env-key-0123456789abcdef",
      PI_CODING_AGENT_DIR: agentDir,
    },
  });
  try {
    const headers = { authorization: "Bearer client-token-0123456789abcdef" };
    const res = await fetch(`${child.ready.url}/auth/status`, { headers });
    assert.equal(res.status, 200);
    const text = await res.text();
    const body = JSON.parse(text);
    const openai = body.providers.find((p) => p.provider === "openai");
    assert.equal(openai.configured, true);
    assert.equal(openai.source, "env");
    assert.equal(body.file_errors.length, 1);
    assert.equal(body.file_errors[0].file, join(agentDir, "auth.json"));
    assert.match(body.file_errors[0].message, /auth\.json is not valid JSON: .* at line 1 column \d+/);
    const models = await (await fetch(`${child.ready.url}/models`, { headers })).text();
    for (const out of [text, models, child.stderr()]) assert.ok(!out.includes(STORED.slice(0, 10)), "no part of the stored key");
    assert.ok(JSON.parse(models).models.some((m) => m.provider === "openai" && m.available));
  } finally {
    child.child.stdin.end();
    await child.exited;
  }
});

test("a models.json that breaks while the gateway runs keeps the last good catalog and reports it", async () => {
  const up = await startFakeUpstream();
  const agentDir = makeAgentDir({ providers: { up: upstreamProvider(up.url, { ids: ["ok"] }) } });
  const gw = await startGateway({ agentDir });
  try {
    assert.equal((await gw.request("/lm/complete", { json: chat("up/ok") })).status, 200);
    writeFileSync(join(agentDir, "models.json"), `{"providers": {"up": {"apiKey": "${STORED}", `);
    const models = await gw.request("/models");
    assert.equal(models.status, 200);
    assert.ok(models.body.models.some((m) => m.provider === "up" && m.id === "ok"), "the last good catalog stays");
    assert.match(models.body.models_json_error, /models\.json is not valid JSON: .* at line 1 column \d+/);
    assert.ok(!models.text.includes(STORED.slice(0, 10)));
    const status = await gw.request("/auth/status");
    assert.equal(status.status, 200);
    assert.deepEqual(status.body.file_errors.map((e) => e.file), [join(agentDir, "models.json")]);
    assert.equal((await gw.request("/lm/complete", { json: chat("up/ok") })).status, 200);
    writeFileSync(join(agentDir, "models.json"), JSON.stringify({ providers: { up: upstreamProvider(up.url, { ids: ["ok", "new"] }) } }));
    assert.equal((await gw.request("/lm/complete", { json: chat("up/new") })).status, 200); // fixed: read again
    assert.equal((await gw.request("/models")).body.models_json_error, null);
  } finally {
    await gw.close();
    await up.close();
  }
});
