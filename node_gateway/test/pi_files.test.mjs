// The user's pi files. Broken ones: a corrupt auth.json does not switch off env keys and is named
// with position and reason only; a models.json that breaks while the gateway runs keeps the last
// good catalog. Files pi 1.6 itself writes are read as pi reads them.

import assert from "node:assert/strict";
import { once } from "node:events";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { GuardedCredentials, JsonFile, blankJsonComments, describeJsonError } from "../pi_files.mjs";
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

test("models.json is JSONC as pi reads it: comments and trailing commas pass, errors keep their line and column", () => {
  const text = '// top\n{"a": "http://x//y", // note\n "b": [1, 2,],\n}\n';
  assert.deepEqual(JSON.parse(blankJsonComments(text)), { a: "http://x//y", b: [1, 2] });
  assert.equal(blankJsonComments(text).length, text.length);
  const dir = makeAgentDir();
  const file = join(dir, "models.json");
  writeFileSync(file, text);
  assert.equal(new JsonFile(file, { jsonc: true }).error(), null);
  assert.match(new JsonFile(file).error(), /not valid JSON/);
  writeFileSync(file, '// one\n// two\n{"a": 1 "b": 2}\n');
  assert.match(new JsonFile(file, { jsonc: true }).error(), /at line 3 column 9$/);
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

// ---- files as pi 1.6 writes them ----------------------------------------------------------------
// auth.json and settings.json are written by pi's own storage classes (what `pi` /login and
// /model do); pi has no models.json writer, so that file is written as its docs show (JSONC: a
// comment, a trailing comma, "$ENV" key syntax) and checked against pi's own loader first.

const codingAgentModule = (path) => import(new URL(path, import.meta.resolve("@earendil-works/pi-coding-agent")).href);

test("files written by pi 1.6 itself: API key and OAuth in auth.json, a $ENV custom provider, the default model", async () => {
  const [{ AuthStorage }, { SettingsManager }, { ModelConfig }] = await Promise.all([
    codingAgentModule("./core/auth-storage.js"),
    codingAgentModule("./core/settings-manager.js"),
    codingAgentModule("./core/model-config.js"),
  ]);
  const up = await startFakeUpstream();
  const agentDir = makeAgentDir();
  const storedKey = "sk-ant-stored-by-pi-0123456789abcdef";
  const oauthAccess = "oauth-access-token-written-by-pi-0123456789";
  const customKey = "sk-custom-from-env-0123456789abcdef";

  const auth = AuthStorage.create(join(agentDir, "auth.json"));
  await auth.modify("anthropic", () => ({ type: "api_key", key: storedKey }));
  await auth.modify("openai-codex", () => ({
    type: "oauth",
    access: oauthAccess,
    refresh: "oauth-refresh-token-written-by-pi-0123456789",
    expires: Date.now() + 3600_000,
    accountId: "acct-test",
  }));
  const settings = SettingsManager.create(agentDir, agentDir, { projectTrusted: false });
  settings.setDefaultModelAndProvider("custom", "custom-1");
  await settings.flush();
  const block = upstreamProvider(up.url, { apiKey: "$AIIPYTHON_TEST_CUSTOM_KEY", ids: ["custom-1"] });
  const text = JSON.stringify({ providers: { custom: block } }, null, 2);
  // pi's models.json is JSONC: a `//` comment and a trailing comma are valid there
  writeFileSync(join(agentDir, "models.json"), `// written for pi 1.6\n${text.slice(0, -2)},\n}\n`);
  assert.equal((await ModelConfig.load(join(agentDir, "models.json"))).getError(), undefined, "pi itself accepts the file");

  const child = await spawnGateway({
    env: {
      AIIPYTHON_GATEWAY_TOKEN: "client-token-0123456789abcdef",
      AIIPYTHON_TEST_CUSTOM_KEY: customKey,
      PI_CODING_AGENT_DIR: agentDir,
    },
  });
  try {
    const headers = { authorization: "Bearer client-token-0123456789abcdef" };
    const get = async (path) => {
      const res = await fetch(`${child.ready.url}${path}`, { headers });
      assert.equal(res.status, 200, path);
      const body = await res.text();
      for (const secret of [storedKey, oauthAccess, customKey]) assert.ok(!body.includes(secret), `${path} shows no secret`);
      return JSON.parse(body);
    };
    const status = await get("/auth/status");
    assert.deepEqual(status.file_errors, []);
    const by = new Map(status.providers.map((p) => [p.provider, p]));
    assert.equal(by.get("anthropic").configured, true);
    assert.equal(by.get("anthropic").source, "api_key");
    assert.equal(by.get("openai-codex").configured, true);
    assert.equal(by.get("openai-codex").source, "oauth");
    assert.equal(by.get("custom").configured, true);
    // pi 1.6 reports a models.json "$NAME" key as coming from the environment, naming the variable
    assert.equal(by.get("custom").source, "env");
    assert.equal(by.get("custom").detail, "AIIPYTHON_TEST_CUSTOM_KEY");

    const models = await get("/models");
    assert.equal(models.models_json_error, null);
    assert.deepEqual(models.default_model, { provider: "custom", id: "custom-1", source: "settings" });
    const custom = models.models.find((m) => m.provider === "custom" && m.id === "custom-1");
    assert.equal(custom?.available, true);
    assert.ok(models.models.some((m) => m.provider === "anthropic" && m.available));

    const seen = once(up.events, "request");
    const res = await fetch(`${child.ready.url}/lm/complete`, {
      method: "POST",
      headers: { ...headers, "content-type": "application/json" },
      body: JSON.stringify(chat("custom/custom-1")),
    });
    assert.equal(res.status, 200);
    const [{ headers: upstreamHeaders }] = await seen;
    assert.equal(upstreamHeaders.authorization, `Bearer ${customKey}`, "the $ENV key reached the upstream");
  } finally {
    child.child.stdin.end();
    await child.exited;
    await up.close();
  }
});

test("GuardedCredentials: auth.json broken while running hides its credentials, fixed shows them again", async () => {
  const { AuthStorage } = await import(new URL("./core/auth-storage.js", import.meta.resolve("@earendil-works/pi-coding-agent")).href);
  const dir = mkdtempSync(join(tmpdir(), "aiipython-guard-"));
  const path = join(dir, "auth.json");
  const good = JSON.stringify({ fake: { type: "api_key", key: STORED } });
  writeFileSync(path, good, { mode: 0o600 });
  const file = new JsonFile(path);
  const creds = new GuardedCredentials(AuthStorage.create(path), file);
  assert.equal((await creds.read("fake")).key, STORED);
  writeFileSync(path, `${good.slice(0, -1)},`, { mode: 0o600 }); // broken (and a different size: a new revision)
  assert.equal(await creds.read("fake"), undefined, "no stored credential while it does not parse");
  assert.equal(await creds.read("fake", { signal: new AbortController().signal }), undefined, "with a signal too");
  assert.deepEqual(await creds.list(), []);
  writeFileSync(path, `${good}\n`, { mode: 0o600 });
  assert.equal((await creds.read("fake")).key, STORED, "back once it parses");
  assert.equal((await creds.list()).length, 1);
});
