// The gateway in front of a real openai-completions upstream (a local node:http fake declared in
// a temporary models.json): completions, streams, usage arithmetic, and every upstream fault.

import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { getGlobalDispatcher, setGlobalDispatcher } from "undici";
import {
  DEFAULT_USAGE,
  UPSTREAM_KEY,
  TOKEN,
  chat,
  makeAgentDir,
  parseSSE,
  startFakeUpstream,
  startGateway,
  upstreamProvider,
} from "./helpers.mjs";

let up;
let gw;
let agentDir;

before(async () => {
  up = await startFakeUpstream();
  agentDir = makeAgentDir({ providers: { up: upstreamProvider(up.url) } });
  gw = await startGateway({ agentDir });
});
after(async () => {
  await gw?.close();
  await up?.close();
});

const complete = (body) => gw.request("/lm/complete", { json: body });

/** A chat body whose user text marks it, and a promise for the upstream seeing it aborted. */
function marked(model, mark, extra = {}) {
  return { model, messages: [{ role: "user", content: mark }], ...extra };
}
function abortedUpstream(mark) {
  return new Promise((resolve) => {
    const on = ({ body }) => {
      if (JSON.stringify(body.messages ?? []).includes(mark)) {
        up.events.off("aborted", on);
        resolve(body);
      }
    };
    up.events.on("aborted", on);
  });
}
const stream = (body) => gw.request("/lm/stream", { json: body });

function assertUsageAddsUp(usage) {
  const { prompt_tokens, completion_tokens, cached_tokens } = DEFAULT_USAGE;
  assert.equal(usage.input + usage.cacheRead + usage.cacheWrite, prompt_tokens);
  assert.equal(usage.cacheRead, cached_tokens);
  assert.equal(usage.output, completion_tokens);
  assert.equal(usage.totalTokens, prompt_tokens + completion_tokens);
  assert.ok(usage.cost.total > 0, "cost comes from the model's $/1M prices");
}

describe("openai-completions upstream", () => {
  test("complete returns pi's message, the model and the duration; usage adds up", async () => {
    const r = await complete(chat("up/ok"));
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.model, { provider: "up", id: "ok" });
    assert.equal(r.body.message.role, "assistant");
    assert.equal(r.body.message.stopReason, "stop");
    assert.deepEqual(r.body.message.content, [{ type: "text", text: "Hello from the fake upstream." }]);
    assert.equal(typeof r.body.duration_ms, "number");
    assert.ok(r.headers.get("x-request-id"));
    assertUsageAddsUp(r.body.message.usage);
  });

  test("a bare id resolves when one provider has it", async () => {
    const r = await complete(chat("ok"));
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.model, { provider: "up", id: "ok" });
  });

  test("a model added to models.json while the gateway runs is found without a restart", async () => {
    const before = await complete(chat("up/added-later"));
    assert.equal(before.status, 404);
    const providers = { up: upstreamProvider(up.url, { ids: ["ok", "added-later"] }) };
    writeFileSync(join(agentDir, "models.json"), JSON.stringify({ providers }));
    const after = await complete(chat("up/added-later"));
    assert.equal(after.status, 200, after.text);
    writeFileSync(join(agentDir, "models.json"), JSON.stringify({ providers: { up: upstreamProvider(up.url) } }));
  });

  test("stream: one frame per event, deltas only, done carries the complete message", async () => {
    const r = await stream(chat("up/ok"));
    assert.equal(r.status, 200, r.text);
    assert.match(r.headers.get("content-type"), /^text\/event-stream/);
    assert.ok(r.headers.get("x-request-id"));
    assert.ok(!r.text.includes('"partial"'), "frames never carry the growing partial message");
    const frames = parseSSE(r.text);
    const events = frames.map((f) => f.event);
    assert.equal(events[0], "start");
    assert.deepEqual(frames[0].data, { model: { provider: "up", id: "ok" } });
    assert.equal(events.at(-1), "done");
    assert.ok(events.includes("text_start") && events.includes("text_end"));
    const text = frames.filter((f) => f.event === "text_delta").map((f) => f.data.delta).join("");
    assert.equal(text, "Hello from the fake upstream.");
    for (const f of frames.filter((f) => f.event === "text_delta")) {
      assert.deepEqual(Object.keys(f.data).sort(), ["contentIndex", "delta"]);
    }
    const done = frames.at(-1).data;
    assert.equal(done.reason, "stop");
    assert.equal(done.message.content[0].text, text);
    assert.equal(typeof done.duration_ms, "number");
    assertUsageAddsUp(done.message.usage);
  });

  test("tool_calls and tool results reach the upstream payload; a tool call comes back", async () => {
    const tools = [
      {
        type: "function",
        function: {
          name: "get_weather",
          description: "Weather for a city",
          parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
        },
      },
    ];
    const messages = [
      { role: "system", content: "You are terse." },
      { role: "developer", content: [{ type: "text", text: "Use tools." }] },
      { role: "user", content: "Weather in Paris?" },
      {
        role: "assistant",
        content: null,
        tool_calls: [{ id: "call_9", type: "function", function: { name: "get_weather", arguments: '{"city": "Paris"}' } }],
      },
      { role: "tool", tool_call_id: "call_9", content: "18 C, sunny" },
      { role: "user", content: "And tomorrow?" },
    ];
    const seen = up.nextRequest();
    const r = await complete({ model: "up/tool-call", messages, tools, options: { tool_choice: "required", temperature: 0, max_tokens: 64 } });
    assert.equal(r.status, 200, r.text);
    const payload = await seen;
    assert.equal(payload.messages[0].role, "system");
    assert.equal(payload.messages[0].content, "You are terse.\n\nUse tools.");
    const assistant = payload.messages.find((m) => m.role === "assistant");
    assert.deepEqual(assistant.tool_calls.map((c) => [c.id, c.function.name, JSON.parse(c.function.arguments)]), [
      ["call_9", "get_weather", { city: "Paris" }],
    ]);
    const toolMsg = payload.messages.find((m) => m.role === "tool");
    assert.equal(toolMsg.tool_call_id, "call_9");
    assert.match(JSON.stringify(toolMsg.content), /18 C, sunny/);
    assert.equal(payload.messages.at(-1).role, "user");
    assert.equal(payload.tools[0].function.name, "get_weather");
    assert.equal(payload.tool_choice, "required");
    assert.equal(payload.temperature, 0);
    assert.equal(payload.max_tokens, 64);
    const msg = r.body.message;
    assert.equal(msg.stopReason, "toolUse");
    const call = msg.content.find((b) => b.type === "toolCall");
    assert.deepEqual([call.id, call.name, call.arguments], ["call_1", "get_weather", { city: "Paris" }]);
  });

  test("stream of a tool call: toolcall_start names it, toolcall_end carries it whole", async () => {
    const r = await stream(chat("up/tool-call"));
    assert.equal(r.status, 200, r.text);
    const frames = parseSSE(r.text);
    const start = frames.find((f) => f.event === "toolcall_start");
    assert.deepEqual(start.data, { contentIndex: 0, id: "call_1", name: "get_weather" });
    const end = frames.find((f) => f.event === "toolcall_end");
    assert.deepEqual(end.data.toolCall.arguments, { city: "Paris" });
    assert.equal(frames.at(-1).data.reason, "toolUse");
  });

  test("stop sequences and a named tool_choice reach the payload", async () => {
    const seen = up.nextRequest();
    const tools = [{ type: "function", function: { name: "f", parameters: { type: "object", properties: {} } } }];
    const r = await complete(chat("up/ok", { tools, options: { stop: ["END", "STOP"], tool_choice: { type: "function", function: { name: "f" } }, session_id: "s1" } }));
    assert.equal(r.status, 200, r.text);
    const payload = await seen;
    assert.deepEqual(payload.stop, ["END", "STOP"]);
    assert.deepEqual(payload.tool_choice, { type: "function", function: { name: "f" } });
  });

  test("a base64 image reaches the upstream as an image part", async () => {
    const seen = up.nextRequest();
    const image = "data:image/png;base64,iVBORw0KGgo=";
    const r = await complete({
      model: "up/ok",
      messages: [{ role: "user", content: [{ type: "text", text: "What is this?" }, { type: "image_url", image_url: { url: image } }] }],
    });
    assert.equal(r.status, 200, r.text);
    const payload = await seen;
    assert.match(JSON.stringify(payload.messages.at(-1).content), /data:image\/png;base64,iVBORw0KGgo=/);
  });
});

describe("upstream failures are truthful", () => {
  test("upstream 500 -> 502 upstream_error (never a 200)", async () => {
    for (const path of ["/lm/complete", "/lm/stream"]) {
      const r = await gw.request(path, { json: chat("up/fail-500") });
      assert.equal(r.status, 502, `${path}: ${r.text}`);
      assert.equal(r.body.error.type, "upstream_error");
      assert.equal(r.body.error.upstream_status, 500);
      assert.equal(r.body.error.request_id, r.headers.get("x-request-id"));
    }
  });

  test("upstream 429 -> 429 rate_limit with retry_after from Retry-After", async () => {
    for (const path of ["/lm/complete", "/lm/stream"]) {
      const r = await gw.request(path, { json: chat("up/rate-429") });
      assert.equal(r.status, 429, r.text);
      assert.equal(r.body.error.type, "rate_limit");
      assert.equal(r.body.error.retry_after, 7);
      assert.equal(r.headers.get("retry-after"), "7");
    }
  });

  test("upstream 401 -> 502 upstream_auth_error", async () => {
    const r = await complete(chat("up/auth-401"));
    assert.equal(r.status, 502, r.text);
    assert.equal(r.body.error.type, "upstream_auth_error");
  });

  test("context overflow -> 400 context_window_exceeded", async () => {
    const r = await complete(chat("up/overflow-400"));
    assert.equal(r.status, 400, r.text);
    assert.equal(r.body.error.type, "context_window_exceeded");
  });

  test("an upstream that never answers -> 504 after the configured timeout", async () => {
    const t0 = performance.now();
    const aborted = abortedUpstream("timeout-504");
    const r = await complete(marked("up/hang", "timeout-504", { options: { timeout_ms: 300 } }));
    const elapsed = performance.now() - t0;
    assert.equal(r.status, 504, r.text);
    assert.equal(r.body.error.type, "upstream_timeout");
    assert.ok(elapsed >= 290 && elapsed < 5000, `took ${elapsed} ms`);
    await aborted; // the gateway closed its upstream connection
  });

  test("stream: timeout before any content is an HTTP 504", async () => {
    const r = await stream(chat("up/hang", { options: { timeout_ms: 200 } }));
    assert.equal(r.status, 504, r.text);
    assert.equal(r.body.error.type, "upstream_timeout");
  });

  test("malformed SSE -> 502 upstream_error", async () => {
    const r = await complete(chat("up/malformed"));
    assert.equal(r.status, 502, r.text);
    assert.equal(r.body.error.type, "upstream_error");
  });

  test("malformed SSE after content -> the stream ends with an error frame", async () => {
    const r = await stream(chat("up/malformed-after-content"));
    assert.equal(r.status, 200, r.text);
    const frames = parseSSE(r.text);
    assert.equal(frames[0].event, "start");
    assert.equal(frames.at(-1).event, "error");
    assert.equal(frames.filter((f) => f.event === "error" || f.event === "done").length, 1);
    const err = frames.at(-1).data;
    assert.equal(err.error.type, "upstream_error");
    assert.ok(err.error.request_id);
    assert.equal(err.message.content[0].text, "partial ");
  });

  test("upstream disconnect mid-stream -> error frame (stream) / 502 (complete)", async () => {
    const s = await stream(chat("up/disconnect"));
    assert.equal(s.status, 200, s.text);
    assert.equal(parseSSE(s.text).at(-1).event, "error");
    const c = await complete(chat("up/disconnect"));
    assert.equal(c.status, 502, c.text);
    assert.equal(c.body.error.type, "upstream_error");
  });

  test("stream: a timeout after content ends with an upstream_timeout error frame", async () => {
    const r = await stream(chat("up/stall", { options: { timeout_ms: 300 } }));
    assert.equal(r.status, 200);
    const last = parseSSE(r.text).at(-1);
    assert.equal(last.event, "error");
    assert.equal(last.data.error.type, "upstream_timeout");
  });

  test("a client that disconnects mid-stream makes the upstream see its connection closed", async () => {
    const aborted = abortedUpstream("client-gone-stream");
    const controller = new AbortController();
    const res = await fetch(`${gw.url}/lm/stream`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify(marked("up/stall", "client-gone-stream")),
      signal: controller.signal,
    });
    assert.equal(res.status, 200);
    const reader = res.body.getReader();
    const first = await reader.read(); // the start frame and the first delta
    assert.match(new TextDecoder().decode(first.value), /event: start/);
    controller.abort();
    const body = await aborted;
    assert.equal(body.model, "stall");
  });

  test("a client that goes away during /lm/complete aborts the upstream call too", async () => {
    const seen = up.nextRequest();
    const aborted = abortedUpstream("client-gone-complete");
    const controller = new AbortController();
    const pending = fetch(`${gw.url}/lm/complete`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify(marked("up/hang", "client-gone-complete")),
      signal: controller.signal,
    }).catch((err) => err);
    await seen; // the call reached the upstream
    controller.abort();
    assert.equal((await pending).name, "AbortError");
    const body = await aborted;
    assert.equal(body.model, "hang");
  });

  test("no API key, OAuth token or gateway token in any response or log line", async () => {
    const r = await complete(chat("up/echo-key-401"));
    assert.equal(r.status, 502, r.text);
    assert.ok(!r.text.includes(UPSTREAM_KEY), r.text);
    assert.ok(!r.text.includes("sk-test"), r.text);
    const s = await stream(chat("up/echo-key-after-content"));
    assert.equal(s.status, 200, s.text);
    const last = parseSSE(s.text).at(-1);
    assert.equal(last.event, "error");
    assert.equal(last.data.message.content[0].text, "partial ");
    assert.ok(!s.text.includes(UPSTREAM_KEY), s.text);
    const logs = gw.logs.join("");
    assert.ok(!logs.includes(UPSTREAM_KEY));
    assert.ok(!logs.includes(TOKEN));
    assert.ok(gw.logs.length > 0);
  });
});

test("pi's fetch goes through the global undici dispatcher the gateway installs", async () => {
  const current = getGlobalDispatcher();
  let dispatched = 0;
  const counting = new Proxy(current, {
    get(target, prop, receiver) {
      if (prop === "dispatch") {
        return (opts, handler) => {
          if (String(opts.origin).endsWith(`:${up.port}`)) dispatched++; // upstream calls only
          return target.dispatch(opts, handler);
        };
      }
      const v = Reflect.get(target, prop, receiver);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
  setGlobalDispatcher(counting);
  try {
    const before = dispatched;
    const r = await complete(chat("up/ok"));
    assert.equal(r.status, 200);
    assert.ok(dispatched > before, "the upstream request went through the installed dispatcher");
    assert.equal(current.gatewayOwned, true);
  } finally {
    setGlobalDispatcher(current);
  }
});
