// Unit tests of the pure parts: error classification and redaction, the converter, provider blocks.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ERROR_TYPES, GatewayError, addSecret, classifyFailure, envelope, parseRetryAfter, redact, toGatewayError } from "../errors.mjs";
import { convertRequest, eventData, requestModelName, sseFrame } from "../convert.mjs";
import { providerConfigFromModelsJson } from "../pi_adapter.mjs";

const failed = (errorMessage, stopReason = "error") => ({ role: "assistant", content: [], stopReason, errorMessage });
const classify = (msg, facts = {}) => classifyFailure(msg, { notConfiguredMessage: () => "log in", ...facts });

describe("errors", () => {
  test("the table has the protocol's statuses", () => {
    assert.equal(ERROR_TYPES.rate_limit, 429);
    assert.equal(ERROR_TYPES.upstream_timeout, 504);
    assert.equal(ERROR_TYPES.provider_not_configured, 403);
    assert.equal(ERROR_TYPES.context_window_exceeded, 400);
    assert.throws(() => new GatewayError("nope", "x"));
  });

  test("pi's failures classify by status, text and the gateway's own abort reason", () => {
    const cases = [
      [failed('500: {"message":"boom"}'), {}, "upstream_error"],
      [failed("503 status code (no body)"), {}, "upstream_error"],
      [failed("Connection error."), {}, "upstream_error"],
      [failed("terminated"), {}, "upstream_error"],
      [failed('429: {"message":"slow"}'), {}, "rate_limit"],
      [failed("anything"), { upstreamStatus: 429, retryAfter: "2" }, "rate_limit"],
      [failed("401: bad key"), {}, "upstream_auth_error"],
      [failed("403 status code (no body)"), {}, "upstream_auth_error"],
      [failed("Request timed out."), {}, "upstream_timeout"],
      [failed("Request was aborted", "aborted"), { abortReason: "timeout", timeoutMs: 5 }, "upstream_timeout"],
      [failed("Request was aborted", "aborted"), { abortReason: "shutdown" }, "shutting_down"],
      [failed("Provider is not configured: openai"), {}, "provider_not_configured"],
      [failed("400: prompt is too long"), { overflow: true }, "context_window_exceeded"],
      [failed('400: {"message":"bad param"}'), {}, "invalid_request"],
      [failed("Stream ended without finish_reason"), {}, "upstream_error"],
    ];
    for (const [msg, facts, type] of cases) {
      assert.equal(classify(msg, facts).type, type, `${msg.errorMessage} ${JSON.stringify(facts)}`);
    }
    const rl = classify(failed("429: x"), { upstreamStatus: 429, retryAfter: "2.5" });
    assert.equal(rl.extra.retry_after, 2.5);
    assert.equal(classify(failed("502: x")).extra.upstream_status, 502);
  });

  test("Retry-After: seconds, HTTP date, retry-after-ms", () => {
    assert.equal(parseRetryAfter("7"), 7);
    assert.equal(parseRetryAfter(undefined, "1500"), 1.5);
    assert.equal(parseRetryAfter("soon"), undefined);
    const inTen = new Date(Date.now() + 10000).toUTCString();
    assert.ok(Math.abs(parseRetryAfter(inTen) - 10) <= 1.5);
  });

  test("redaction: registered secrets and key-shaped strings", () => {
    addSecret("my-registered-secret-value");
    const text = redact(
      'Incorrect API key provided: sk-proj-abcdefghij1234567890. Bearer eyJabc.def.ghi token my-registered-secret-value "api_key": "zzzzzzzzzzzz"',
    );
    assert.ok(!text.includes("sk-proj-abcdefghij"), text);
    assert.ok(!text.includes("my-registered-secret-value"), text);
    assert.ok(!text.includes("zzzzzzzzzzzz"), text);
    assert.ok(text.includes("Incorrect API key provided"));
    const err = classify(failed("401: Incorrect API key provided: sk-abcdefghijklmnop"));
    assert.ok(!err.message.includes("sk-abcdefghijklmnop"), err.message);
  });

  test("envelope and foreign errors", () => {
    const env = envelope(new GatewayError("rate_limit", "slow", { retry_after: 2, unknown: undefined }), "rid");
    assert.deepEqual(env, { error: { type: "rate_limit", message: "slow", request_id: "rid", retry_after: 2 } });
    assert.equal(toGatewayError({ code: "FST_ERR_CTP_BODY_TOO_LARGE", statusCode: 413 }, 10).type, "request_too_large");
    const internal = toGatewayError(new TypeError("x is undefined, key sk-abcdefghijklmnop"));
    assert.equal(internal.type, "internal_error");
    assert.ok(!internal.message.includes("sk-"));
  });
});

const MODEL = { provider: "p", id: "m", api: "openai-completions", input: ["text", "image"] };

describe("convert", () => {
  test("model name is checked first", () => {
    assert.equal(requestModelName({ model: "a/b", messages: [] }), "a/b");
    assert.throws(() => requestModelName([]), /JSON object/);
    assert.throws(() => requestModelName({ model: "" }), /body\.model is required/);
  });

  test("messages: system/developer joined, tool round trip, toolName from the call", () => {
    const { context, options, toolNames } = convertRequest(
      {
        model: "p/m",
        messages: [
          { role: "developer", content: "A" },
          { role: "user", content: "q" },
          { role: "assistant", content: [{ type: "text", text: "t" }], tool_calls: [{ id: "c1", type: "function", function: { name: "f", arguments: "{\"x\":1}" } }] },
          { role: "tool", tool_call_id: "c1", content: [{ type: "text", text: "r" }] },
          { role: "system", content: "B" },
        ],
        tools: [{ type: "function", function: { name: "f", description: "d", parameters: { type: "object" }, strict: true } }],
        options: { max_tokens: 5, stop: "x", timeout_ms: null },
      },
      MODEL,
    );
    assert.equal(context.systemPrompt, "A\n\nB");
    assert.deepEqual(context.messages.map((m) => m.role), ["user", "assistant", "toolResult"]);
    assert.deepEqual(context.messages[1].content.at(-1), { type: "toolCall", id: "c1", name: "f", arguments: { x: 1 } });
    assert.equal(context.messages[1].stopReason, "toolUse");
    assert.equal(context.messages[1].provider, "p");
    assert.equal(context.messages[2].toolName, "f");
    assert.deepEqual(context.messages[2].content, [{ type: "text", text: "r" }]);
    assert.deepEqual(context.tools[0].constrainedSampling, { type: "json_schema", strict: "require" });
    assert.deepEqual(options, { max_tokens: 5, stop: "x" });
    assert.deepEqual(toolNames, ["f"]);
  });

  test("images: base64 data URLs only", () => {
    const user = (url) => ({ model: "p/m", messages: [{ role: "user", content: [{ type: "image_url", image_url: { url } }] }] });
    const { context } = convertRequest(user("data:image/webp;base64,UklGR"), MODEL);
    assert.deepEqual(context.messages[0].content[0], { type: "image", data: "UklGR", mimeType: "image/webp" });
    assert.throws(() => convertRequest(user("http://x/y.png"), MODEL), /remote image URL/);
    assert.throws(() => convertRequest(user("data:image/png,rawbytes"), MODEL), /not a base64 data: URL/);
    assert.throws(() => convertRequest(user("data:text/plain;base64,AAAA"), MODEL), /not an image/);
  });

  test("pi events -> deltas only, never the partial message", () => {
    const partial = { content: [{ type: "toolCall", id: "c", name: "f", arguments: {} }], big: "x".repeat(1000) };
    const cases = [
      [{ type: "text_delta", contentIndex: 0, delta: "hi", partial }, { contentIndex: 0, delta: "hi" }],
      [{ type: "text_end", contentIndex: 0, content: "hi", partial }, { contentIndex: 0 }],
      [{ type: "thinking_start", contentIndex: 0, partial }, { contentIndex: 0 }],
      [{ type: "toolcall_start", contentIndex: 0, partial }, { contentIndex: 0, id: "c", name: "f" }],
      [{ type: "toolcall_delta", contentIndex: 0, delta: "{", partial }, { contentIndex: 0, delta: "{" }],
    ];
    for (const [ev, want] of cases) assert.deepEqual(eventData(ev, MODEL), want);
    assert.deepEqual(eventData({ type: "start", partial }, MODEL), { model: { provider: "p", id: "m" } });
    assert.equal(sseFrame("text_delta", { delta: "a\nb\u2028" }), 'event: text_delta\ndata: {"delta":"a\\nb\u2028"}\n\n');
  });
});

describe("extra providers", () => {
  test("a models.json block gets models.json defaults and provider-level compat", () => {
    const cfg = providerConfigFromModelsJson("local", {
      api: "openai-completions",
      baseUrl: "http://127.0.0.1:1/v1",
      apiKey: "x",
      compat: { supportsStore: false },
      models: [{ id: "m", compat: { maxTokensField: "max_tokens" } }],
    });
    assert.deepEqual(cfg.models[0], {
      id: "m",
      name: "m",
      reasoning: false,
      input: ["text"],
      cost: { input: 0, output: 0, cacheRead: 0, cacheWrite: 0 },
      contextWindow: 128000,
      maxTokens: 16384,
      compat: { supportsStore: false, maxTokensField: "max_tokens" },
    });
    assert.throws(() => providerConfigFromModelsJson("x", { models: [] }), /non-empty/);
    assert.throws(() => providerConfigFromModelsJson("x", { oauth: "radius", models: [{ id: "a" }] }), /"oauth" is not supported/);
  });
});
