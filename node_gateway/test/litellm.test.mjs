// A LiteLLM proxy as provider `litellm`: discovery from the proxy's /v1/models and /model/info,
// per-family parameter filtering through pi's compat flags, failure reasons, and no key leaks.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { compatFor, litellmSource } from "../litellm_proxy.mjs";
import { chat, request, startFakeUpstream, startGateway } from "./helpers.mjs";

const PROXY_KEY = "sk-litellm-proxy-key-9f8e7d6c5b4a";
const CATALOG = {
  key: PROXY_KEY,
  models: [
    {
      id: "claude-sonnet",
      backend: "databricks/databricks-claude-sonnet-4",
      model_info: { max_input_tokens: 200000, max_output_tokens: 64000, input_cost_per_token: 3e-6, output_cost_per_token: 1.5e-5, supports_vision: true },
    },
    { id: "gpt-4o-mini", backend: "openai/gpt-4o-mini", model_info: { max_input_tokens: 128000, max_tokens: 16384, input_cost_per_token: 1.5e-7 } },
    { id: "smol", backend: "openai/smollm2", model_info: { max_input_tokens: 8192 } },
  ],
};

describe("litellm proxy discovery", () => {
  let proxy;
  let gw;
  const saved = {};
  before(async () => {
    proxy = await startFakeUpstream({ catalog: CATALOG });
    for (const k of ["LITELLM_PROXY_API_BASE", "LITELLM_PROXY_API_KEY", "PI_CACHE_RETENTION"]) saved[k] = process.env[k];
    process.env.LITELLM_PROXY_API_BASE = proxy.url.replace(/\/v1$/, "");
    process.env.LITELLM_PROXY_API_KEY = PROXY_KEY;
    process.env.PI_CACHE_RETENTION = "long"; // so pi would send prompt_cache_key where compat allows it
    gw = await startGateway();
  });
  after(async () => {
    await gw?.close();
    await proxy?.close();
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });

  test("/models lists the proxy's models with its metadata", async () => {
    const { status, body, text } = await gw.request("/models");
    assert.equal(status, 200);
    assert.equal(body.providers_error, null);
    const ours = body.models.filter((m) => m.provider === "litellm");
    assert.deepEqual(ours.map((m) => m.id).sort(), ["claude-sonnet", "gpt-4o-mini", "smol"]);
    const claude = ours.find((m) => m.id === "claude-sonnet");
    assert.equal(claude.context_window, 200000);
    assert.equal(claude.max_tokens, 64000);
    assert.equal(claude.cost.input, 3);
    assert.equal(claude.cost.output, 15);
    assert.deepEqual(claude.input, ["text", "image"]);
    assert.equal(claude.available, true);
    assert.equal(ours.find((m) => m.id === "gpt-4o-mini").max_tokens, 16384);
    assert.ok(!text.includes(PROXY_KEY));
  });

  test("a call reaches the proxy with its key; store/prompt_cache_key only for families that take them", async () => {
    const bodies = {};
    for (const id of ["claude-sonnet", "gpt-4o-mini"]) {
      const next = new Promise((resolve) => proxy.events.once("request", resolve));
      const res = await gw.request("/lm/complete", { json: chat(`litellm/${id}`, { options: { session_id: "sess-1", max_tokens: 32 } }) });
      assert.equal(res.status, 200, res.text);
      const seen = await next;
      assert.equal(seen.headers.authorization, `Bearer ${PROXY_KEY}`);
      bodies[id] = seen.body;
    }
    assert.ok(!("store" in bodies["claude-sonnet"]));
    assert.ok(!("prompt_cache_key" in bodies["claude-sonnet"]));
    assert.equal(bodies["claude-sonnet"].max_tokens, 32);
    assert.equal(bodies["gpt-4o-mini"].store, false);
    assert.equal(bodies["gpt-4o-mini"].prompt_cache_key, "sess-1");
    assert.equal(bodies["gpt-4o-mini"].max_completion_tokens, 32);
  });

  test("a proxy that goes away: the next /models names the reason; back: models return", async () => {
    const port = proxy.port;
    await proxy.close();
    const down = await gw.request("/models");
    assert.equal(down.status, 200);
    assert.match(down.body.providers_error.litellm, /LiteLLM proxy \(from LITELLM_PROXY_API_BASE\) not registered: cannot reach/);
    assert.equal(down.body.models.filter((m) => m.provider === "litellm").length, 0);
    const status = await gw.request("/auth/status");
    assert.match(status.body.providers_error.litellm, /cannot reach/);
    proxy = await startFakeUpstream({ catalog: CATALOG, port });
    const back = await gw.request("/models");
    assert.equal(back.body.providers_error, null);
    assert.equal(back.body.models.filter((m) => m.provider === "litellm").length, 3);
  });
});

describe("litellm proxy failures never fail the start", () => {
  const cases = [
    ["a wrong key", { catalog: { ...CATALOG, key: "sk-other-key-000000000000" } }, /HTTP 401 \(check LITELLM_PROXY_API_KEY\)/],
    ["garbage instead of a model list", { catalog: { key: PROXY_KEY, models: [] } }, /lists no model/],
  ];
  for (const [name, opts, reason] of cases) {
    test(name, async () => {
      const proxy = await startFakeUpstream(opts);
      const env = { LITELLM_PROXY_API_BASE: proxy.url, LITELLM_PROXY_API_KEY: PROXY_KEY };
      const gw = await startGateway({ env });
      try {
        const { status, body, text } = await gw.request("/models");
        assert.equal(status, 200);
        assert.match(body.providers_error.litellm, reason);
        assert.ok(!text.includes(PROXY_KEY));
        assert.ok(body.models.length > 0, "the built-in catalog is still served");
      } finally {
        await gw.close();
        await proxy.close();
      }
    });
  }

  test("no /model/info: models are registered with defaults", async () => {
    const proxy = await startFakeUpstream({ catalog: { ...CATALOG, modelInfo: false } });
    const gw = await startGateway({ providers: { litellm: { baseUrl: proxy.url, apiKey: PROXY_KEY } } });
    try {
      const { body } = await gw.request("/models");
      assert.equal(body.providers_error, null);
      const smol = body.models.find((m) => m.provider === "litellm" && m.id === "smol");
      assert.equal(smol.context_window, 128000);
    } finally {
      await gw.close();
      await proxy.close();
    }
  });
});

test("where the proxy is: block, LiteLLM's variables, OPENAI_BASE_URL only when opted in", () => {
  assert.equal(litellmSource({}), null);
  assert.equal(litellmSource({ OPENAI_BASE_URL: "http://x", OPENAI_API_KEY: "k" }), null);
  assert.deepEqual(litellmSource({ OPENAI_BASE_URL: "http://x", OPENAI_API_KEY: "k", AIIPYTHON_LITELLM_FROM_OPENAI_BASE_URL: "1" }), {
    baseUrl: "http://x",
    apiKey: "k",
    keyRef: "$OPENAI_API_KEY",
    source: "OPENAI_BASE_URL",
  });
  assert.equal(litellmSource({ LITELLM_PROXY_API_BASE: "http://p", LITELLM_PROXY_API_KEY: "k" }).keyRef, "$LITELLM_PROXY_API_KEY");
  assert.equal(litellmSource({}, { baseUrl: "http://b", apiKey: "lit" }).source, "providers");
  assert.equal(litellmSource({}, { baseUrl: "http://b", models: [{ id: "m" }] }), null, "a block with models is a plain provider");
});

test("compat per family", () => {
  assert.equal(compatFor("claude-3-5", "anthropic/claude-3-5").supportsStore, false);
  assert.equal(compatFor("my-model", "gemini/gemini-2.5-pro").supportsLongCacheRetention, false);
  assert.equal(compatFor("gpt-5", "openai/gpt-5").supportsStore, true);
  assert.equal(compatFor("o3-mini").supportsDeveloperRole, true);
  assert.equal(compatFor("llama-3").supportsStore, true, "unknown families fail open, as the seed does");
});
