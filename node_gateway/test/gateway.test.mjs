// Routes in-process on a loopback socket, with pi's faux provider for canned replies:
// token, health, models, auth status, name resolution, replies, request validation, body limit.

import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import http from "node:http";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fauxAssistantMessage, fauxProvider, fauxText, fauxThinking, fauxToolCall } from "@earendil-works/pi-ai";
import { PI_VERSION, TOKEN, chat, makeAgentDir, parseSSE, request, startGateway, upstreamProvider } from "./helpers.mjs";

delete process.env.OPENAI_API_KEY; // the not-configured test must not see a real key

let gw;
let faux;
const BODY_LIMIT = 52428800; // the default limit (50 MB)

before(async () => {
  const agentDir = makeAgentDir({
    providers: {
      // two providers offering the same id (ambiguous bare id), one without a key (not configured)
      twin_a: upstreamProvider("http://127.0.0.1:9/v1", { ids: ["twin", "only-a"] }),
      twin_b: upstreamProvider("http://127.0.0.1:9/v1", { ids: ["twin"] }),
      nokey: upstreamProvider("http://127.0.0.1:9/v1", { ids: ["keyless"], apiKey: null }),
    },
    settings: { defaultProvider: "faux", defaultModel: "faux-1" },
  });
  faux = fauxProvider({
    models: [
      { id: "faux-1", input: ["text", "image"] },
      { id: "faux-think", reasoning: true },
      { id: "faux-text-only", input: ["text"] },
    ],
  });
  gw = await startGateway({ agentDir, bodyLimit: BODY_LIMIT, setup: (adapter) => adapter.registerNativeProvider(faux.provider) });
});
after(() => gw?.close());

const complete = (body) => gw.request("/lm/complete", { json: body });
const stream = (body) => gw.request("/lm/stream", { json: body });

describe("token", () => {
  test("every route requires the bearer token: missing or wrong -> 401 with the envelope", async () => {
    for (const [path, json] of [["/health"], ["/models"], ["/auth/status"], ["/lm/complete", chat("faux/faux-1")], ["/lm/stream", chat("faux/faux-1")], ["/nope"]]) {
      for (const token of [null, "wrong-token", `${TOKEN}x`]) {
        const r = await request(gw.url, path, { token, json });
        assert.equal(r.status, 401, `${path} ${token}`);
        assert.equal(r.body.error.type, "unauthorized");
        assert.ok(r.body.error.request_id);
        assert.equal(r.headers.get("x-request-id"), r.body.error.request_id);
      }
    }
    assert.equal(faux.state.callCount, 0, "no call reached pi");
  });

  test("unknown route -> 404 not_found", async () => {
    const r = await gw.request("/v2/nothing");
    assert.equal(r.status, 404);
    assert.equal(r.body.error.type, "not_found");
  });
});

describe("read-only routes", () => {
  test("GET /health", async () => {
    const r = await gw.request("/health");
    assert.equal(r.status, 200);
    assert.equal(r.body.ok, true);
    assert.equal(r.body.pid, process.pid);
    assert.equal(r.body.pi_version, PI_VERSION);
    assert.equal(r.body.version, "0.1.0");
    assert.equal(r.body.node_version, process.version);
    assert.equal(typeof r.body.uptime_s, "number");
  });

  test("GET /models lists pi's catalog with availability and the default model", async () => {
    const r = await gw.request("/models");
    assert.equal(r.status, 200);
    const byName = new Map(r.body.models.map((m) => [`${m.provider}/${m.id}`, m]));
    const a = byName.get("twin_a/twin");
    assert.deepEqual(a.cost, { input: 1, output: 2, cache_read: 0.5, cache_write: 0 });
    assert.equal(a.api, "openai-completions");
    assert.equal(a.context_window, 32768);
    assert.equal(a.available, true);
    assert.equal(byName.get("nokey/keyless").available, false);
    assert.deepEqual(byName.get("faux/faux-think").thinking_levels.slice(0, 2), ["off", "minimal"]);
    assert.ok(byName.has("openai/gpt-4o"), "the built-in catalog, offline");
    assert.deepEqual(r.body.default_model, { provider: "faux", id: "faux-1", source: "settings" });
    assert.equal(r.body.default_model_warning, null);
    assert.equal(r.body.models_json_error, null);
    assert.ok(!r.text.includes("sk-test"), "no key in /models");
  });

  test("GET /auth/status: configured or not, the source, env vars to set; never a secret", async () => {
    const r = await gw.request("/auth/status");
    assert.equal(r.status, 200);
    const by = new Map(r.body.providers.map((p) => [p.provider, p]));
    assert.deepEqual(by.get("twin_a").configured, true);
    assert.equal(by.get("twin_a").source, "models_json");
    assert.equal(by.get("nokey").configured, false);
    assert.deepEqual(by.get("openai"), { provider: "openai", configured: false, source: null, env_vars: ["OPENAI_API_KEY"] });
    assert.ok(!r.text.includes("sk-test"));
  });
});

describe("model names", () => {
  test("unknown model -> 404 model_not_found with close matches", async () => {
    const r = await complete(chat("faux/faux-2"));
    assert.equal(r.status, 404);
    assert.equal(r.body.error.type, "model_not_found");
    assert.ok(r.body.error.candidates.includes("faux/faux-1"), JSON.stringify(r.body));
  });

  test("ambiguous bare id -> 400 ambiguous_model listing the candidates", async () => {
    const r = await complete(chat("twin"));
    assert.equal(r.status, 400);
    assert.equal(r.body.error.type, "ambiguous_model");
    assert.deepEqual(r.body.error.candidates, ["twin_a/twin", "twin_b/twin"]);
  });

  test("a provider without credentials -> 403 provider_not_configured naming the fix", async () => {
    const custom = await complete(chat("nokey/keyless"));
    assert.equal(custom.status, 403);
    assert.equal(custom.body.error.type, "provider_not_configured");
    assert.match(custom.body.error.message, /models\.json/);
    const builtin = await complete(chat("openai/gpt-4o"));
    assert.equal(builtin.status, 403);
    assert.equal(
      builtin.body.error.message,
      'No credentials for provider "openai". Log in with "aiipython auth login openai" or set OPENAI_API_KEY.',
    );
  });
});

describe("replies from pi (faux provider)", () => {
  test("complete: text, thinking and toolCall blocks; usage; stopReason", async () => {
    faux.setResponses([
      fauxAssistantMessage([fauxThinking("Let me think."), fauxText("Hi there."), fauxToolCall("lookup", { q: "x" }, { id: "call_7" })], {
        stopReason: "toolUse",
      }),
    ]);
    const r = await complete(chat("faux/faux-1"));
    assert.equal(r.status, 200, r.text);
    const m = r.body.message;
    assert.deepEqual(m.content.map((b) => b.type), ["thinking", "text", "toolCall"]);
    assert.equal(m.stopReason, "toolUse");
    assert.deepEqual(m.content[2].arguments, { q: "x" });
    assert.ok(m.usage.input > 0);
    assert.deepEqual(r.body.model, { provider: "faux", id: "faux-1" });
  });

  test("stream: frames named by pi's event types, deltas only, last frame done", async () => {
    faux.setResponses([fauxAssistantMessage([fauxThinking("Hmm, thinking hard."), fauxText("A longer answer in several deltas.")])]);
    const r = await stream(chat("faux/faux-1"));
    assert.equal(r.status, 200, r.text);
    assert.ok(!r.text.includes('"partial"'));
    const frames = parseSSE(r.text);
    const kinds = [...new Set(frames.map((f) => f.event))];
    assert.deepEqual(kinds, ["start", "thinking_start", "thinking_delta", "thinking_end", "text_start", "text_delta", "text_end", "done"]);
    assert.deepEqual(frames.find((f) => f.event === "text_end").data, { contentIndex: 1 });
    const text = frames.filter((f) => f.event === "text_delta").map((f) => f.data.delta).join("");
    assert.equal(text, "A longer answer in several deltas.");
    assert.equal(frames.at(-1).data.message.content[1].text, text);
  });

  test("a pi error before any content -> an HTTP error, not a 200 stream", async () => {
    faux.setResponses([fauxAssistantMessage([], { stopReason: "error", errorMessage: "500: {\"error\":\"boom\"}" })]);
    const s = await stream(chat("faux/faux-1"));
    assert.equal(s.status, 502);
    assert.equal(s.body.error.type, "upstream_error");
    faux.setResponses([fauxAssistantMessage([], { stopReason: "error", errorMessage: "Connection error." })]);
    const c = await complete(chat("faux/faux-1"));
    assert.equal(c.status, 502);
    assert.equal(c.body.error.type, "upstream_error");
  });

  test("an empty queue (pi's error) is never a 200", async () => {
    faux.setResponses([]);
    const r = await complete(chat("faux/faux-1"));
    assert.equal(r.status, 502);
  });

  test("reasoning level: carried when the model supports it, else 400", async () => {
    let seen;
    faux.setResponses([
      (context, options) => {
        seen = options.reasoning;
        return fauxAssistantMessage("ok");
      },
    ]);
    const ok = await complete(chat("faux/faux-think", { options: { reasoning: "high" } }));
    assert.equal(ok.status, 200, ok.text);
    assert.equal(seen, "high");
    const bad = await complete(chat("faux/faux-1", { options: { reasoning: "high" } }));
    assert.equal(bad.status, 400);
    assert.match(bad.body.error.message, /options\.reasoning "high" is not supported by faux\/faux-1/);
    faux.setResponses([fauxAssistantMessage("ok")]);
    const off = await complete(chat("faux/faux-1", { options: { reasoning: "off" } }));
    assert.equal(off.status, 200);
  });

  test("options reach pi: temperature, max_tokens, session id; context carries messages whole", async () => {
    let seenOptions;
    let seenContext;
    faux.setResponses([
      (context, options) => {
        seenOptions = options;
        seenContext = context;
        return fauxAssistantMessage("ok");
      },
    ]);
    const image = "data:image/jpeg;base64,/9j/4AAQ";
    const r = await complete({
      model: "faux/faux-1",
      messages: [
        { role: "system", content: "S1" },
        { role: "user", content: [{ type: "text", text: "look" }, { type: "image_url", image_url: { url: image } }] },
        { role: "assistant", content: "seen", reasoning_content: "pondering" },
        { role: "developer", content: "S2" },
        { role: "user", content: "again" },
      ],
      options: { temperature: 0.5, max_tokens: 100, session_id: "sess-1", tool_choice: "none" },
    });
    assert.equal(r.status, 200, r.text);
    assert.equal(seenOptions.temperature, 0.5);
    assert.equal(seenOptions.maxTokens, 100);
    assert.equal(seenOptions.sessionId, "sess-1");
    assert.equal(seenOptions.toolChoice, "none");
    assert.equal(typeof seenOptions.signal?.aborted, "boolean");
    const roles = seenContext.messages.map((m) => m.role);
    assert.deepEqual(roles, ["system", "user", "assistant", "user"]);
    assert.equal(seenContext.messages[0].content, "S1\n\nS2");
    assert.deepEqual(seenContext.messages[1].content[1], { type: "image", data: "/9j/4AAQ", mimeType: "image/jpeg" });
    assert.deepEqual(seenContext.messages[2].content, [{ type: "thinking", thinking: "pondering" }, { type: "text", text: "seen" }]);
  });
});

describe("nothing is dropped silently: 400 naming the part", () => {
  const cases = [
    ["a remote image URL", { messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "https://example.com/cat.png" } }] }] }, /messages\[0\]\.content\[0\]\.image_url\.url is a remote image URL/],
    ["audio", { messages: [{ role: "user", content: [{ type: "input_audio", input_audio: { data: "x", format: "wav" } }] }] }, /messages\[0\]\.content\[0\] \(type "input_audio"\)/],
    ["an unknown role", { messages: [{ role: "function", content: "x", name: "f" }] }, /messages\[0\]\.role "function"/],
    ["an unknown option", { options: { top_k: 3 } }, /options\.top_k is not a known option/],
    ["an unknown message field", { messages: [{ role: "user", content: "x", name: "bob" }] }, /messages\[0\]\.name is not supported/],
    ["an unknown body field", { n: 2 }, /body\.n is not supported/],
    ["bad tool-call arguments", { messages: [{ role: "assistant", tool_calls: [{ id: "c", type: "function", function: { name: "f", arguments: "{nope" } }] }] }, /tool_calls\[0\]\.function\.arguments is not valid JSON/],
    ["a tool result for no call", { messages: [{ role: "tool", tool_call_id: "zzz", content: "r" }] }, /tool_call_id "zzz" does not answer/],
    ["an image for a text-only model", { model: "faux/faux-text-only", messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "data:image/png;base64,AAAA" } }] }] }, /does not accept image input/],
    ["stop for an API pi cannot carry it to", { options: { stop: ["x"] } }, /options\.stop cannot be carried to faux\/faux-1/],
    ["tool_choice required for an API pi cannot carry it to", { tools: [{ type: "function", function: { name: "f" } }], options: { tool_choice: "required" } }, /tool_choice "required" cannot be carried/],
    ["tool_choice naming an undeclared tool", { options: { tool_choice: { type: "function", function: { name: "g" } } } }, /names function "g", which is not in tools/],
    ["a bad temperature", { options: { temperature: "hot" } }, /options\.temperature must be a number/],
    ["a missing model", { model: undefined }, /body\.model is required/],
    ["empty messages", { messages: [] }, /messages must not be empty/],
  ];
  for (const [what, patch, pattern] of cases) {
    test(what, async () => {
      const before = faux.state.callCount;
      const body = { ...chat("faux/faux-1"), ...patch };
      const r = await complete(body);
      assert.equal(r.status, 400, r.text);
      assert.equal(r.body.error.type, "invalid_request");
      assert.match(r.body.error.message, pattern);
      assert.equal(faux.state.callCount, before, "nothing reached pi");
    });
  }

  test("bad JSON -> 400; wrong content-type -> 400", async () => {
    const res = await fetch(`${gw.url}/lm/complete`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: "{not json",
    });
    assert.equal(res.status, 400);
    assert.equal((await res.json()).error.type, "invalid_request");
    const res2 = await fetch(`${gw.url}/lm/complete`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "text/plain" },
      body: "hello",
    });
    assert.equal(res2.status, 400);
    assert.equal((await res2.json()).error.type, "invalid_request");
  });
});

describe("body limit", () => {
  test("a chunked body over the limit without Content-Length -> 413 with the envelope", async () => {
    const size = 60 * 1024 * 1024;
    const { status, body } = await new Promise((resolve, reject) => {
      const url = new URL(`${gw.url}/lm/complete`);
      const req = http.request(
        { host: url.hostname, port: url.port, path: url.pathname, method: "POST", headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" } },
        (res) => {
          let text = "";
          res.setEncoding("utf8");
          res.on("data", (d) => {
            text += d;
          });
          res.on("end", () => resolve({ status: res.statusCode, body: JSON.parse(text) }));
          res.on("error", reject);
        },
      );
      req.on("error", () => {}); // the server may close while we are still sending; the response decides
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      let sent = 0;
      let responded = false;
      req.on("response", () => {
        responded = true;
      });
      req.on("close", () => {
        if (!responded) reject(new Error("the connection closed without a response"));
      });
      const pump = () => {
        while (sent < size && !responded && !req.destroyed) {
          sent += chunk.length;
          if (!req.write(chunk)) {
            req.once("drain", pump);
            return;
          }
        }
        if (!req.destroyed) req.end();
      };
      req.write("{\"model\": \"faux/faux-1\", \"pad\": \"");
      pump();
    });
    assert.equal(status, 413);
    assert.equal(body.error.type, "request_too_large");
    assert.match(body.error.message, new RegExp(`${BODY_LIMIT} bytes`));
  });
});

test("a broken models.json: the gateway still serves pi's built-in catalog and reports the problem", async () => {
  const agentDir = makeAgentDir();
  writeFileSync(join(agentDir, "models.json"), '{"providers": {"bad": {"api": 42}}');
  const other = await startGateway({ agentDir });
  try {
    const r = await other.request("/models");
    assert.equal(r.status, 200);
    assert.equal(typeof r.body.models_json_error, "string");
    assert.ok(r.body.models_json_error.length > 0);
    assert.ok(r.body.models.some((m) => m.provider === "openai"));
  } finally {
    await other.close();
  }
});
