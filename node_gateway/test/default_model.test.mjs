// The default model is pi's own choice (pi-coding-agent's findInitialModel and its
// defaultModelPerProvider), never echo/echo, and settings.json's default is set through pi's
// SettingsManager on an admin-only route. Each case runs on a fresh agent dir with scripted env keys.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { makeAgentDir, startGateway, upstreamProvider } from "./helpers.mjs";

const ENTRY = import.meta.resolve("@earendil-works/pi-coding-agent");
const { defaultModelPerProvider } = await import(new URL("./core/model-resolver.js", ENTRY).href);

const KEYS = ["OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "OPENROUTER_API_KEY", "XAI_API_KEY", "GROQ_API_KEY"];
for (const key of Object.keys(process.env)) {
  if (key.endsWith("_API_KEY") || key.endsWith("_TOKEN")) delete process.env[key];
}

const gateways = [];
after(() => Promise.all(gateways.map((g) => g.close())));

async function withEnv(env, options, fn) {
  for (const key of KEYS) delete process.env[key];
  Object.assign(process.env, env);
  const gw = await startGateway(options);
  gateways.push(gw);
  try {
    return await fn(gw);
  } finally {
    for (const key of Object.keys(env)) delete process.env[key];
  }
}

test("only OPENAI_API_KEY: pi's default model for openai, not the alphabetically first", async () => {
  await withEnv({ OPENAI_API_KEY: "sk-test-openai-0123456789" }, {}, async (gw) => {
    const r = await gw.request("/models");
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.default_model, { provider: "openai", id: defaultModelPerProvider.openai, source: "pi" });
    assert.notEqual(r.body.default_model.id, "gpt-4");
    assert.equal(r.body.default_model_warning, null);
    assert.equal(r.body.settings_default_model, null);
  });
});

test("only ANTHROPIC_API_KEY: pi's default model for anthropic", async () => {
  await withEnv({ ANTHROPIC_API_KEY: "sk-ant-test-0123456789" }, {}, async (gw) => {
    const r = await gw.request("/models/default");
    assert.deepEqual(r.body.default_model, { provider: "anthropic", id: defaultModelPerProvider.anthropic, source: "pi" });
  });
});

test("nothing configured: no default (echo/echo is never chosen); the local provider comes after every other", async () => {
  await withEnv({}, {}, async (gw) => {
    const r = await gw.request("/models");
    assert.equal(r.body.default_model, null);
    assert.ok(r.body.models.some((m) => m.provider === "echo" && m.available), "echo is available but not a default");
  });
  const providers = { local: upstreamProvider("http://127.0.0.1:9/v1", { ids: ["smollm2-135m"] }) };
  await withEnv({}, { providers }, async (gw) => {
    assert.deepEqual((await gw.request("/models")).body.default_model, { provider: "local", id: "smollm2-135m", source: "pi" });
  });
  await withEnv({ OPENAI_API_KEY: "sk-test-openai-0123456789" }, { providers }, async (gw) => {
    assert.equal((await gw.request("/models")).body.default_model.provider, "openai");
  });
});

test("a settings.json default pi does not know is a warning, and pi's own choice is used", async () => {
  const agentDir = makeAgentDir({ settings: { defaultProvider: "openai", defaultModel: "gpt-nonexistent" } });
  await withEnv({ OPENAI_API_KEY: "sk-test-openai-0123456789" }, { agentDir }, async (gw) => {
    const r = await gw.request("/models");
    assert.deepEqual(r.body.settings_default_model, { provider: "openai", id: "gpt-nonexistent" });
    assert.deepEqual(r.body.default_model, { provider: "openai", id: defaultModelPerProvider.openai, source: "pi" });
    assert.match(r.body.default_model_warning, /openai\/gpt-nonexistent .*is not a model pi knows/);
    assert.match(r.body.default_model_warning, /aiipython models default MODEL/);
  });
});

test("a settings.json default without credentials is a warning too", async () => {
  const agentDir = makeAgentDir({ settings: { defaultProvider: "anthropic", defaultModel: defaultModelPerProvider.anthropic } });
  await withEnv({ OPENAI_API_KEY: "sk-test-openai-0123456789" }, { agentDir }, async (gw) => {
    const r = await gw.request("/models");
    assert.equal(r.body.default_model.provider, "openai");
    assert.match(r.body.default_model_warning, /has no credentials .*ANTHROPIC_API_KEY/);
  });
});

test("PUT /models/default: admin token only, pi's SettingsManager writes settings.json, unknown names are 404", async () => {
  await withEnv({ OPENAI_API_KEY: "sk-test-openai-0123456789" }, {}, async (gw) => {
    const denied = await gw.request("/models/default", { method: "PUT", json: { model: "openai/gpt-4o" } });
    assert.equal(denied.status, 403);
    const unknown = await gw.admin("/models/default", { method: "PUT", json: { model: "openai/gpt-nope" } });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.error.type, "model_not_found");
    const bad = await gw.admin("/models/default", { method: "PUT", json: {} });
    assert.equal(bad.status, 400);
    const r = await gw.admin("/models/default", { method: "PUT", json: { model: "openai/gpt-4o" } });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.settings_default_model, { provider: "openai", id: "gpt-4o" });
    assert.deepEqual(r.body.default_model, { provider: "openai", id: "gpt-4o", source: "settings" });
    const saved = JSON.parse(readFileSync(join(gw.agentDir, "settings.json"), "utf8"));
    assert.equal(saved.defaultProvider, "openai");
    assert.equal(saved.defaultModel, "gpt-4o");
    assert.deepEqual((await gw.request("/models")).body.default_model, { provider: "openai", id: "gpt-4o", source: "settings" });
  });
});
