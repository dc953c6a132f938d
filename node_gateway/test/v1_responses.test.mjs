// POST /v1/responses in front of the fake openai-completions upstream and the echo provider:
// the response object, input items over two turns, reasoning items, the official streaming
// event order, structured output on the wire, what is refused (nothing is stored), faults.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { DEFAULT_USAGE, makeAgentDir, parseSSE, startFakeUpstream, reasoningProvider, startGateway, upstreamProvider } from "./helpers.mjs";

let up;
let gw;

before(async () => {
  up = await startFakeUpstream();
  const providers = {
    up: upstreamProvider(up.url),
    think: reasoningProvider(up.url),
  };
  gw = await startGateway({ agentDir: makeAgentDir({ providers }) });
});
after(async () => {
  await gw?.close();
  await up?.close();
});

const responses = (body) => gw.request("/v1/responses", { json: body });
const tools = [{ type: "function", name: "get_weather", description: "Weather.", parameters: { type: "object", properties: { city: { type: "string" } } } }];

/** Stream -> [{event, data}], checking that every frame names its type twice and numbers run 0..n. */
function events(text) {
  const frames = parseSSE(text);
  frames.forEach((f, i) => {
    assert.equal(f.data.type, f.event);
    assert.equal(f.data.sequence_number, i);
  });
  return frames;
}

describe("POST /v1/responses", () => {
  test("non-streaming: a completed response with an output_text message and usage that adds up", async () => {
    const seen = up.nextRequest();
    const r = await responses({ model: "up/ok", input: "Say hello.", instructions: "Be brief.", temperature: 0.2 });
    assert.equal(r.status, 200, r.text);
    const b = r.body;
    assert.match(b.id, /^resp_/);
    assert.equal(b.object, "response");
    assert.equal(b.status, "completed");
    assert.equal(b.model, "up/ok");
    assert.equal(b.instructions, "Be brief.");
    assert.equal(b.temperature, 0.2);
    assert.equal(b.store, false);
    assert.equal(b.error, null);
    assert.equal(b.output.length, 1);
    const [msg] = b.output;
    assert.equal(msg.type, "message");
    assert.equal(msg.role, "assistant");
    assert.deepEqual(msg.content, [{ type: "output_text", text: "Hello from the fake upstream.", annotations: [], logprobs: [] }]);
    const { prompt_tokens, completion_tokens, cached_tokens } = DEFAULT_USAGE;
    assert.deepEqual(b.usage, {
      input_tokens: prompt_tokens,
      input_tokens_details: { cached_tokens, cache_write_tokens: 0 },
      output_tokens: completion_tokens,
      output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: prompt_tokens + completion_tokens,
    });
    const body = await seen;
    assert.deepEqual(body.messages.map((m) => m.role), ["system", "user"]);
    assert.equal(body.temperature, 0.2);
  });

  test("function tools over two turns: a function_call item, then function_call_output reaches the upstream", async () => {
    const r = await responses({ model: "up/tool-call", input: "Weather in Paris?", tools, tool_choice: "auto" });
    assert.equal(r.status, 200, r.text);
    const [call] = r.body.output;
    assert.equal(call.type, "function_call");
    assert.equal(call.call_id, "call_1");
    assert.equal(call.name, "get_weather");
    assert.deepEqual(JSON.parse(call.arguments), { city: "Paris" });

    const seen = up.nextRequest();
    const second = await responses({
      model: "up/ok",
      tools,
      input: [
        { role: "user", content: [{ type: "input_text", text: "Weather in Paris?" }] },
        { type: "function_call", call_id: call.call_id, name: call.name, arguments: call.arguments },
        { type: "function_call_output", call_id: call.call_id, output: "18 C, sunny" },
      ],
    });
    assert.equal(second.status, 200, second.text);
    const body = await seen;
    assert.equal(body.messages.find((m) => m.role === "assistant").tool_calls[0].id, "call_1");
    const tool = body.messages.find((m) => m.role === "tool");
    assert.equal(tool.tool_call_id, "call_1");
    assert.match(JSON.stringify(tool.content), /18 C, sunny/);
  });

  test("reasoning: a reasoning item with reasoning_text before the message; reasoning.effort reaches the upstream", async () => {
    const seen = up.nextRequest();
    const r = await responses({ model: "think/reasoning", input: "Think.", reasoning: { effort: "high", summary: "auto" } });
    assert.equal(r.status, 200, r.text);
    assert.equal((await seen).reasoning_effort, "high");
    assert.deepEqual(r.body.output.map((i) => i.type), ["reasoning", "message"]);
    assert.deepEqual(r.body.output[0].content, [{ type: "reasoning_text", text: "Thinking it over." }]);
    assert.equal(r.body.usage.output_tokens_details.reasoning_tokens, 4);
    assert.equal(r.body.reasoning.effort, "high");
  });

  test("streaming: the official event order for a text answer", async () => {
    const r = await responses({ model: "up/ok", input: "hi", stream: true });
    assert.equal(r.status, 200, r.text);
    const ev = events(r.text);
    const types = ev.map((e) => e.event);
    const deltas = types.filter((t) => t === "response.output_text.delta").length;
    assert.ok(deltas >= 3, "several deltas");
    assert.deepEqual(types, [
      "response.created",
      "response.in_progress",
      "response.output_item.added",
      "response.content_part.added",
      ...Array(deltas).fill("response.output_text.delta"),
      "response.output_text.done",
      "response.content_part.done",
      "response.output_item.done",
      "response.completed",
    ]);
    assert.equal(ev[0].data.response.status, "in_progress");
    const itemId = ev[2].data.item.id;
    assert.ok(ev.slice(3, -1).every((e) => e.data.item_id === undefined || e.data.item_id === itemId));
    const text = ev.filter((e) => e.event === "response.output_text.delta").map((e) => e.data.delta).join("");
    assert.equal(text, "Hello from the fake upstream.");
    assert.equal(ev.find((e) => e.event === "response.output_text.done").data.text, text);
    const done = ev.at(-1).data.response;
    assert.equal(done.status, "completed");
    assert.equal(done.output[0].content[0].text, text);
    assert.equal(done.usage.total_tokens, DEFAULT_USAGE.prompt_tokens + DEFAULT_USAGE.completion_tokens);
  });

  test("streaming: reasoning item, then the message; a function call with its argument events", async () => {
    const r = events((await responses({ model: "think/reasoning", input: "Think.", stream: true })).text).map((e) => e.event);
    const firstText = r.indexOf("response.output_text.delta");
    assert.ok(r.indexOf("response.reasoning_text.delta") < firstText);
    assert.ok(r.indexOf("response.reasoning_text.done") < firstText);
    assert.equal(r.filter((t) => t === "response.output_item.added").length, 2);
    assert.equal(r.filter((t) => t === "response.output_item.done").length, 2);

    const f = events((await responses({ model: "up/tool-call", input: "Weather?", tools, stream: true })).text);
    const types = f.map((e) => e.event);
    assert.deepEqual(types.filter((t) => !t.endsWith(".delta")), [
      "response.created",
      "response.in_progress",
      "response.output_item.added",
      "response.function_call_arguments.done",
      "response.output_item.done",
      "response.completed",
    ]);
    const added = f[2].data.item;
    assert.deepEqual([added.type, added.call_id, added.name, added.status], ["function_call", "call_1", "get_weather", "in_progress"]);
    const args = f.filter((e) => e.event === "response.function_call_arguments.delta").map((e) => e.data.delta).join("");
    assert.equal(args, '{"city": "Paris"}');
    assert.equal(f.find((e) => e.event === "response.function_call_arguments.done").data.arguments, args);
  });

  test("max_output_tokens cuts the echo: status incomplete, response.incomplete", async () => {
    const r = await responses({ model: "echo/echo", input: "one two three four", max_output_tokens: 2 });
    assert.equal(r.body.status, "incomplete");
    assert.deepEqual(r.body.incomplete_details, { reason: "max_output_tokens" });
    assert.equal(r.body.output[0].content[0].text, "one two ");
    const s = events((await responses({ model: "echo/echo", input: "one two three four", max_output_tokens: 2, stream: true })).text);
    assert.equal(s.at(-1).event, "response.incomplete");
  });

  test("text.format json_schema and json_object reach the upstream as response_format", async () => {
    const schema = { type: "object", properties: { a: { type: "string" } }, required: ["a"] };
    const seen = up.nextRequest();
    const r = await responses({ model: "up/ok", input: "JSON", text: { format: { type: "json_schema", name: "answer", schema, strict: true } } });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual((await seen).response_format, { type: "json_schema", json_schema: { name: "answer", schema, strict: true } });
    assert.deepEqual(r.body.text, { format: { type: "json_schema", name: "answer", schema, strict: true } });
    const json = up.nextRequest();
    assert.equal((await responses({ model: "up/ok", input: "JSON", text: { format: { type: "json_object" } } })).status, 200);
    assert.deepEqual((await json).response_format, { type: "json_object" });
  });

  test("what cannot be honoured is a 400 naming it; nothing is stored", async () => {
    const cases = [
      [{ previous_response_id: "resp_1" }, "previous_response_id", /stores nothing/],
      [{ store: true }, "store", /stores nothing/],
      [{ conversation: "conv_1" }, "conversation", /stores nothing/],
      [{ input: [{ type: "item_reference", id: "msg_1" }] }, "input[0]", /stores nothing/],
      [{ tools: [{ type: "web_search" }] }, "tools[0].type", /only function tools/],
      [{ background: true }, "background", /not carried/],
      [{ frobnicate: 1 }, "frobnicate", /not a parameter of \/v1\/responses/],
      [{ text: { format: { type: "json_schema", name: "bad name!" } } }, "text.format", /name must be/],
      [{ reasoning: { effort: "extreme" } }, "reasoning.effort", /must be one of/],
      [{ input: [{ role: "user", content: [{ type: "input_file", file_id: "f" }] }] }, "input[0].content[0].type", /cannot be carried/],
      [{ input: 42 }, "input", /string or a list/],
    ];
    for (const [extra, param, message] of cases) {
      const r = await responses({ model: "up/ok", input: "hi", ...extra });
      assert.equal(r.status, 400, `${JSON.stringify(extra)}: ${r.text}`);
      assert.equal(r.body.error.param, param, JSON.stringify(extra));
      assert.match(r.body.error.message, message);
    }
    const effort = await responses({ model: "up/ok", input: "hi", reasoning: { effort: "high" } });
    assert.equal(effort.status, 400);
    assert.equal(effort.body.error.param, "reasoning.effort");
    assert.match(effort.body.error.message, /^reasoning\.effort "high" is not supported by up\/ok/);
  });

  test("faults: 429 stays 429 before content; a failure after content ends with response.failed", async () => {
    const rate = await responses({ model: "up/rate-429", input: "hi", stream: true });
    assert.equal(rate.status, 429);
    assert.equal(rate.headers.get("retry-after"), "7");
    assert.equal(rate.body.error.code, "rate_limit_exceeded");
    assert.equal((await responses({ model: "up/fail-500", input: "hi" })).status, 502);
    const r = await responses({ model: "up/malformed-after-content", input: "hi", stream: true });
    assert.equal(r.status, 200);
    const ev = events(r.text);
    const last = ev.at(-1);
    assert.equal(last.event, "response.failed");
    assert.equal(last.data.response.status, "failed");
    assert.equal(last.data.response.error.code, "server_error");
    assert.ok(ev.some((e) => e.event === "response.output_text.delta"));
  });
});
