// The OpenAI-compatible API's models and chat completions routes, in front of the fake
// openai-completions upstream (declared in a temporary models.json) and the echo provider:
// shapes, usage arithmetic, tools, reasoning, options on the wire, strict validation, faults.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Admission } from "../admission.mjs";
import { DEFAULT_USAGE, UPSTREAM_KEY, makeAgentDir, parseSSE, startFakeUpstream, reasoningProvider, startGateway, upstreamProvider } from "./helpers.mjs";

let up;
let gw;

before(async () => {
  up = await startFakeUpstream();
  const providers = {
    up: upstreamProvider(up.url),
    nokey: upstreamProvider(up.url, { apiKey: null, ids: ["ok", "echo-key-401"] }),
    think: reasoningProvider(up.url),
  };
  gw = await startGateway({ agentDir: makeAgentDir({ providers }) });
});
after(async () => {
  await gw?.close();
  await up?.close();
});

const chat = (body, headers) => gw.request("/v1/chat/completions", { json: body, headers });
const user = (content) => [{ role: "user", content }];

/** OpenAI SSE body -> the parsed `data:` payloads (the [DONE] marker as the string "[DONE]"). */
function dataFrames(text) {
  return text
    .split("\n\n")
    .filter((b) => b.trim())
    .map((b) => {
      assert.ok(b.startsWith("data: "), `every frame is a data: line, got ${JSON.stringify(b)}`);
      const payload = b.slice(6);
      return payload === "[DONE]" ? "[DONE]" : JSON.parse(payload);
    });
}

function assertEnvelope(res, status, code, param) {
  assert.equal(res.status, status, res.text);
  const e = res.body.error;
  assert.equal(typeof e.message, "string");
  assert.ok("type" in e && "param" in e && "code" in e, `OpenAI envelope fields: ${JSON.stringify(e)}`);
  assert.equal(e.code, code);
  if (param !== undefined) assert.equal(e.param, param);
  return e;
}

describe("GET /v1/models", () => {
  test("lists models with credentials in OpenAI's shape; echo/echo always; ?all=true lists every model", async () => {
    const r = await gw.request("/v1/models");
    assert.equal(r.status, 200);
    assert.equal(r.body.object, "list");
    const ids = r.body.data.map((m) => m.id);
    assert.ok(ids.includes("echo/echo"));
    assert.ok(ids.includes("up/ok"));
    assert.ok(!ids.includes("nokey/ok"), "a provider without credentials is not listed");
    const m = r.body.data.find((x) => x.id === "up/ok");
    assert.deepEqual(m, { id: "up/ok", object: "model", created: 0, owned_by: "up" });
    const all = await gw.request("/v1/models?all=true");
    assert.ok(all.body.data.length > r.body.data.length);
    assert.ok(all.body.data.some((x) => x.id === "nokey/ok"));
    assertEnvelope(await gw.request("/v1/models?all=yes"), 400, "invalid_request", "all");
  });

  test("retrieve takes an id with '/' URL-encoded or as path segments, and a shorthand id", async () => {
    for (const path of ["/v1/models/up%2Fok", "/v1/models/up/ok", "/v1/models/echo"]) {
      const r = await gw.request(path);
      assert.equal(r.status, 200, `${path}: ${r.text}`);
      assert.equal(r.body.object, "model");
    }
    assert.equal((await gw.request("/v1/models/up%2Fok")).body.id, "up/ok");
    const e = assertEnvelope(await gw.request("/v1/models/up%2Fnope"), 404, "model_not_found");
    assert.match(e.message, /unknown model "up\/nope"/);
    const amb = assertEnvelope(await gw.request("/v1/models/ok"), 400, "ambiguous_model");
    assert.deepEqual(amb.candidates, ["nokey/ok", "up/ok"]);
  });
});

describe("POST /v1/chat/completions", () => {
  test("non-streaming: a chat.completion with usage that adds up and the model as provider/id", async () => {
    const r = await chat({ model: "up/ok", messages: user("Say hello.") });
    assert.equal(r.status, 200, r.text);
    const b = r.body;
    assert.match(b.id, /^chatcmpl-/);
    assert.equal(b.object, "chat.completion");
    assert.equal(b.model, "up/ok");
    assert.ok(Number.isInteger(b.created));
    assert.deepEqual(b.choices, [
      { index: 0, message: { role: "assistant", content: "Hello from the fake upstream.", refusal: null }, logprobs: null, finish_reason: "stop" },
    ]);
    const { prompt_tokens, completion_tokens, cached_tokens } = DEFAULT_USAGE;
    assert.deepEqual(b.usage, {
      prompt_tokens,
      completion_tokens,
      total_tokens: prompt_tokens + completion_tokens,
      prompt_tokens_details: { cached_tokens },
      completion_tokens_details: { reasoning_tokens: 0 },
    });
    assert.ok(r.headers.get("x-request-id"));
  });

  test("streaming: role first, content deltas, finish_reason, the usage chunk, then [DONE]", async () => {
    const r = await chat({ model: "up/ok", messages: user("hi"), stream: true, stream_options: { include_usage: true } });
    assert.equal(r.status, 200, r.text);
    assert.match(r.headers.get("content-type"), /^text\/event-stream/);
    const frames = dataFrames(r.text);
    assert.equal(frames.at(-1), "[DONE]");
    const chunks = frames.slice(0, -1);
    assert.ok(chunks.every((c) => c.object === "chat.completion.chunk" && c.id === chunks[0].id && c.model === "up/ok"));
    assert.equal(chunks[0].choices[0].delta.role, "assistant");
    const text = chunks.map((c) => c.choices[0]?.delta?.content ?? "").join("");
    assert.equal(text, "Hello from the fake upstream.");
    const contentChunks = chunks.filter((c) => c.choices[0]?.delta?.content);
    assert.ok(contentChunks.length >= 3, "streamed in several deltas");
    const finish = chunks.filter((c) => c.choices[0]?.finish_reason);
    assert.deepEqual(finish.map((c) => c.choices[0].finish_reason), ["stop"]);
    const last = chunks.at(-1);
    assert.deepEqual(last.choices, []);
    assert.equal(last.usage.total_tokens, DEFAULT_USAGE.prompt_tokens + DEFAULT_USAGE.completion_tokens);
    const plain = dataFrames((await chat({ model: "up/ok", messages: user("hi"), stream: true })).text);
    assert.ok(plain.slice(0, -1).every((c) => c.usage === undefined), "no usage chunk unless asked for");
  });

  test("tools over two turns: tool_calls with finish_reason tool_calls, then the tool result reaches the upstream", async () => {
    const tools = [{ type: "function", function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } } } }];
    const r = await chat({ model: "up/tool-call", messages: user("Weather in Paris?"), tools, tool_choice: "auto" });
    assert.equal(r.status, 200, r.text);
    const choice = r.body.choices[0];
    assert.equal(choice.finish_reason, "tool_calls");
    assert.equal(choice.message.content, null);
    assert.deepEqual(choice.message.tool_calls, [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris"}' } }]);

    const s = dataFrames((await chat({ model: "up/tool-call", messages: user("Weather?"), tools, stream: true })).text).slice(0, -1);
    const calls = s.flatMap((c) => c.choices[0]?.delta?.tool_calls ?? []);
    assert.deepEqual(calls[0], { index: 0, id: "call_1", type: "function", function: { name: "get_weather", arguments: "" } });
    assert.equal(calls.map((c) => c.function.arguments).join(""), '{"city": "Paris"}');
    assert.equal(s.find((c) => c.choices[0]?.finish_reason).choices[0].finish_reason, "tool_calls");

    const seen = up.nextRequest();
    const second = await chat({
      model: "up/ok",
      tools,
      messages: [...user("Weather in Paris?"), choice.message, { role: "tool", tool_call_id: "call_1", content: "18 C, sunny" }],
    });
    assert.equal(second.status, 200, second.text);
    const body = await seen;
    const toolMsg = body.messages.find((m) => m.role === "tool");
    assert.equal(toolMsg.tool_call_id, "call_1");
    assert.match(JSON.stringify(toolMsg.content), /18 C, sunny/);
    assert.equal(body.messages.find((m) => m.role === "assistant").tool_calls[0].function.name, "get_weather");
  });

  test("the model's reasoning comes back as reasoning_content (message and deltas) with reasoning_tokens", async () => {
    const seen = up.nextRequest();
    const r = await chat({ model: "think/reasoning", messages: user("Think."), reasoning_effort: "high" });
    assert.equal(r.status, 200, r.text);
    assert.equal((await seen).reasoning_effort, "high");
    assert.equal(r.body.choices[0].message.reasoning_content, "Thinking it over.");
    assert.equal(r.body.choices[0].message.content, "Hello from the fake upstream.");
    assert.equal(r.body.usage.completion_tokens_details.reasoning_tokens, 4);
    const s = dataFrames((await chat({ model: "reasoning", messages: user("Think."), stream: true })).text).slice(0, -1);
    assert.equal(s.map((c) => c.choices[0]?.delta?.reasoning_content ?? "").join(""), "Thinking it over.");
  });

  test("sampling options, stop, user, JSON schema output and parallel_tool_calls reach the upstream", async () => {
    const schema = { type: "object", properties: { answer: { type: "string" } }, required: ["answer"] };
    const seen = up.nextRequest();
    const r = await chat({
      model: "up/ok",
      messages: [{ role: "system", content: "Be brief." }, ...user("hi")],
      temperature: 0.5,
      top_p: 0.9,
      seed: 42,
      presence_penalty: 0.1,
      frequency_penalty: -0.2,
      stop: ["END"],
      user: "user-7",
      max_completion_tokens: 50,
      response_format: { type: "json_schema", json_schema: { name: "reply", schema, strict: true } },
      tools: [{ type: "function", function: { name: "f" } }],
      parallel_tool_calls: false,
      n: 1,
      logprobs: false,
      store: false,
    });
    assert.equal(r.status, 200, r.text);
    const body = await seen;
    assert.equal(body.temperature, 0.5);
    assert.equal(body.top_p, 0.9);
    assert.equal(body.seed, 42);
    assert.equal(body.presence_penalty, 0.1);
    assert.equal(body.frequency_penalty, -0.2);
    assert.deepEqual(body.stop, ["END"]);
    assert.equal(body.user, "user-7");
    assert.equal(body.max_tokens, 50);
    assert.equal(body.parallel_tool_calls, false);
    assert.deepEqual(body.response_format, { type: "json_schema", json_schema: { name: "reply", schema, strict: true } });
    const json = up.nextRequest();
    assert.equal((await chat({ model: "up/ok", messages: user("hi"), response_format: { type: "json_object" } })).status, 200);
    assert.deepEqual((await json).response_format, { type: "json_object" });
  });

  test("strict validation: what cannot be honoured is a 400 naming the parameter", async () => {
    const base = { model: "up/ok", messages: user("hi") };
    const cases = [
      [{ n: 2 }, "n", /one choice per call/],
      [{ logprobs: true }, "logprobs", /not carried/],
      [{ top_logprobs: 2 }, "top_logprobs", /not carried/],
      [{ logit_bias: { 50256: -100 } }, "logit_bias", /not carried/],
      [{ audio: { voice: "alloy", format: "mp3" } }, "audio", /not carried/],
      [{ store: true }, "store", /stores nothing/],
      [{ frobnicate: 1 }, "frobnicate", /not a parameter of \/v1\/chat\/completions/],
      [{ temperature: "hot" }, "temperature", /must be a number/],
      [{ max_tokens: 0 }, "max_tokens", /integer >= 1/],
      [{ stream_options: { include_usage: true } }, "stream_options", /only allowed with stream: true/],
      [{ reasoning_effort: "extreme" }, "reasoning_effort", /must be one of/],
      [{ response_format: { type: "xml" } }, "response_format", /must be "text", "json_object" or "json_schema"/],
      [{ tool_choice: "sometimes" }, "tool_choice", /tool_choice must be/],
      [{ messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "https://example.com/cat.png" } }] }] }, "messages[0].content[0].image_url.url", /remote image URL/],
      [{ messages: [{ role: "wizard", content: "x" }] }, "messages[0].role", /cannot be carried/],
    ];
    for (const [extra, param, message] of cases) {
      const e = assertEnvelope(await chat({ ...base, ...extra }), 400, "invalid_request", param);
      assert.match(e.message, message, JSON.stringify(extra));
      assert.equal(e.type, "invalid_request_error");
    }
    const echoJson = assertEnvelope(await chat({ model: "echo/echo", messages: user("{}"), response_format: { type: "json_object" } }), 400, "invalid_request", "response_format");
    assert.match(echoJson.message, /cannot be carried to echo\/echo/);
    const reasoning = assertEnvelope(await chat({ ...base, reasoning_effort: "high" }), 400, "invalid_request", "reasoning_effort");
    assert.match(reasoning.message, /^reasoning_effort "high" is not supported by up\/ok/);
  });

  test("bad bodies are 4xx in OpenAI's envelope and the gateway keeps serving", async () => {
    const post = (text, type = "application/json") =>
      fetch(`${gw.url}/v1/chat/completions`, { method: "POST", headers: { authorization: `Bearer ${gw.token}`, "content-type": type }, body: text }).then(
        async (res) => ({ status: res.status, body: await res.json() }),
      );
    const malformed = await post("{not json");
    assert.equal(malformed.status, 400);
    assert.equal(malformed.body.error.type, "invalid_request_error");
    assert.match(malformed.body.error.message, /not valid JSON/);
    assert.equal((await post("[1,2]")).status, 400);
    const deep = await post(`{"model":"up/ok","messages":[{"role":"user","content":${"[".repeat(5000)}"x"${"]".repeat(5000)}}]}`);
    assert.equal(deep.status, 400);
    assert.equal(deep.body.error.param, "messages");
    assert.match(deep.body.error.message, /deeper than 64 levels/);
    const noModel = await post('{"messages":[]}');
    assert.equal(noModel.status, 400);
    assert.equal(noModel.body.error.param, "model");
    assert.equal((await chat({ model: "up/ok", messages: user("still here") })).status, 200);
  });

  test("upstream faults keep their status: 429 with Retry-After, 500 -> 502, context overflow, auth", async () => {
    const rate = await chat({ model: "up/rate-429", messages: user("hi") });
    const e = assertEnvelope(rate, 429, "rate_limit_exceeded");
    assert.equal(e.type, "rate_limit_error");
    assert.equal(rate.headers.get("retry-after"), "7");
    const fail = assertEnvelope(await chat({ model: "up/fail-500", messages: user("hi") }), 502, "upstream_error");
    assert.equal(fail.type, "server_error");
    assert.equal(fail.upstream_status, 500);
    const streamed = await chat({ model: "up/fail-500", messages: user("hi"), stream: true });
    assert.equal(streamed.status, 502, "a failure before any content is an HTTP error, not a 200 stream");
    assertEnvelope(await chat({ model: "up/overflow-400", messages: user("hi") }), 400, "context_length_exceeded");
    assertEnvelope(await chat({ model: "up/auth-401", messages: user("hi") }), 502, "upstream_auth_error");
    assertEnvelope(await chat({ model: "nokey/ok", messages: user("hi") }), 403, "provider_not_configured");
  });

  test("a failure after content is a final data: {error} frame and no [DONE]", async () => {
    const r = await chat({ model: "up/malformed-after-content", messages: user("hi"), stream: true });
    assert.equal(r.status, 200);
    const frames = dataFrames(r.text);
    assert.notEqual(frames.at(-1), "[DONE]");
    assert.equal(frames[1].choices[0].delta.content, "partial ");
    const last = frames.at(-1);
    assert.equal(last.error.code, "upstream_error");
    assert.equal(last.error.type, "server_error");
  });

  test("X-Pi-Upstream-Api-Key replaces the upstream key for one call and is never echoed", async () => {
    const override = "sk-override-key-for-one-call-0123";
    const seen = new Promise((resolve) => up.events.once("request", ({ headers }) => resolve(headers)));
    const r = await chat({ model: "nokey/ok", messages: user("hi") }, { "x-pi-upstream-api-key": override });
    assert.equal(r.status, 200, r.text);
    assert.equal((await seen).authorization, `Bearer ${override}`);
    const seenUp = new Promise((resolve) => up.events.once("request", ({ headers }) => resolve(headers)));
    await chat({ model: "up/ok", messages: user("hi") }, { "x-pi-upstream-api-key": override });
    assert.equal((await seenUp).authorization, `Bearer ${override}`, "it wins over the configured key");
    const echoed = await chat({ model: "nokey/echo-key-401", messages: user("hi") }, { "x-pi-upstream-api-key": override });
    assert.equal(echoed.status, 502);
    assert.ok(!echoed.text.includes(override), echoed.text);
    assert.ok(!gw.logs.join("").includes(override));
    assert.ok(!gw.logs.join("").includes(UPSTREAM_KEY));
  });
});

describe("echo/echo", () => {
  test("answers with the last user message, usage by the documented token rule", async () => {
    const r = await chat({ model: "echo/echo", messages: [{ role: "system", content: "Ignored by the echo." }, ...user("first"), { role: "assistant", content: "ok" }, ...user("Hello, world!")] });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.choices[0].message.content, "Hello, world!");
    assert.equal(r.body.model, "echo/echo");
    // input: "Ignored by the echo." (5) + "first" (1) + "ok" (1) + "Hello, world!" (4); output 4
    assert.equal(r.body.usage.prompt_tokens, 11);
    assert.equal(r.body.usage.completion_tokens, 4);
    assert.equal(r.body.usage.total_tokens, 15);
  });

  test("streams one token per delta; max_tokens cuts it with finish_reason length; stop cuts it", async () => {
    const frames = dataFrames((await chat({ model: "echo", messages: user("one two three four"), stream: true, stream_options: { include_usage: true } })).text);
    const deltas = frames.slice(0, -1).map((c) => c.choices[0]?.delta?.content).filter(Boolean);
    assert.deepEqual(deltas, ["one ", "two ", "three ", "four"]);
    assert.equal(frames.at(-2).usage.completion_tokens, 4);
    const cut = await chat({ model: "echo/echo", messages: user("one two three four"), max_tokens: 2 });
    assert.equal(cut.body.choices[0].message.content, "one two ");
    assert.equal(cut.body.choices[0].finish_reason, "length");
    const stop = await chat({ model: "echo/echo", messages: user("keep this STOP not this"), stop: "STOP", temperature: 0, seed: 1 });
    assert.equal(stop.body.choices[0].message.content, "keep this ");
    assert.equal(stop.body.choices[0].finish_reason, "stop");
  });
});

describe("limits", () => {
  test("an upstream that does not answer in time is a 504", async () => {
    const slow = await startGateway({ agentDir: makeAgentDir({ providers: { up: upstreamProvider(up.url, { ids: ["hang"] }) } }), timeoutMs: 300 });
    try {
      const r = await slow.request("/v1/chat/completions", { json: { model: "up/hang", messages: user("hi") } });
      assertEnvelope(r, 504, "upstream_timeout");
    } finally {
      await slow.close();
    }
  });

  test("/v1/chat/completions goes through admission: over capacity it is a 503 with Retry-After", async () => {
    const small = await startGateway({ agentDir: makeAgentDir({ providers: { up: upstreamProvider(up.url, { ids: ["stall"] }) } }), admission: new Admission({ limit: 1, queue: 0 }) });
    const controller = new AbortController();
    try {
      const stalled = await fetch(`${small.url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${small.token}`, "content-type": "application/json" },
        body: JSON.stringify({ model: "up/stall", messages: user("hold"), stream: true }),
        signal: controller.signal,
      });
      assert.equal(stalled.status, 200); // first content arrived: it holds the only slot
      const r = await small.request("/v1/chat/completions", { json: { model: "echo/echo", messages: user("hi") } });
      const e = assertEnvelope(r, 503, "overloaded");
      assert.equal(e.type, "server_error");
      assert.equal(r.headers.get("retry-after"), "1");
      assert.equal((await small.request("/v1/models")).status, 200, "cheap routes do not wait");
    } finally {
      controller.abort();
      await small.close();
    }
  });
});
