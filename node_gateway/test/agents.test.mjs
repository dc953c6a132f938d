// The agent message bus (routes/v1/agents.mjs, agent_bus.mjs) on the real in-process gateway:
// post and read, a long poll answered by a post, the bounds (413 / 429 + Retry-After, nothing
// dropped), bad input (400 naming the field), a reader that leaves, shutdown, and the gateway
// still serving afterwards. The two-worker case is in cluster.test.mjs.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { AgentBus } from "../agent_bus.mjs";
import { TOKEN, startGateway } from "./helpers.mjs";

let gw;
let bus;
before(async () => {
  bus = new AgentBus({ perAgent: 3, messageBytes: 200, totalBytes: 1000, waitersPerAgent: 2 });
  gw = await startGateway({ agentBus: bus });
});
after(async () => {
  await gw?.close();
});

/** The error's gateway type: `code` in OpenAI's envelope (the /v1 routes), `type` in the native one. */
const errorCode = (body) => body.error.code ?? body.error.type;

const post = (json) => gw.request("/v1/agents/messages", { json });
const read = (agent, query = "", init = {}) => gw.request(`/v1/agents/${agent}/messages${query}`, init);

/** Until `cond()` holds: yields to the event loop between checks (bounded, not a sleep). */
async function until(cond, what) {
  for (let i = 0; i < 10000; i++) {
    if (cond()) return;
    await new Promise((resolve) => setImmediate(resolve));
  }
  assert.fail(`never happened: ${what}`);
}

test("post stores a message with id and created; read returns it; after=<id> frees it", async () => {
  const r = await post({ from: "planner", to: "coder", content: "write the parser", metadata: { step: 1 } });
  assert.equal(r.status, 200);
  assert.match(r.body.id, /^msg_\d+$/);
  assert.equal(r.body.object, "agent.message");
  assert.ok(Number.isInteger(r.body.created) && r.body.created > 1.7e9, "created is Unix seconds");
  assert.deepEqual({ ...r.body, id: undefined, created: undefined }, { id: undefined, created: undefined, object: "agent.message", from: "planner", to: "coder", content: "write the parser", metadata: { step: 1 } });
  const second = await post({ from: "tester", to: "coder", content: "" });
  assert.equal(second.body.metadata, null);

  const all = await read("coder");
  assert.equal(all.status, 200);
  assert.deepEqual(all.body, { object: "list", data: [r.body, second.body], has_more: false, last_id: second.body.id });
  assert.deepEqual((await read("coder", "?limit=1")).body.data, [r.body], "limit");
  assert.equal((await read("coder", "?limit=1")).body.has_more, true);
  assert.deepEqual((await read("coder", `?after=${r.body.id}`)).body.data, [second.body]);
  assert.deepEqual((await read("coder")).body.data, [second.body], "the first one was acknowledged and freed");
  assert.deepEqual((await read("coder", `?after=${second.body.id}`)).body.data, []);
  assert.deepEqual((await read("nobody")).body, { object: "list", data: [], has_more: false, last_id: null });
  assert.equal(bus.stats().messages, 0);
});

test("long poll: a waiting read is answered by the post", { timeout: 20000 }, async () => {
  const waiting = read("reviewer", "?wait=30");
  await until(() => bus.waiterCount === 1, "the read waits");
  const sent = await post({ from: "coder", to: "reviewer", content: "PR ready" });
  const got = await waiting;
  assert.equal(got.status, 200);
  assert.deepEqual(got.body.data, [sent.body]);
  assert.equal(bus.waiterCount, 0);
  await read("reviewer", `?after=${sent.body.id}`);
});

test("long poll: a post for another agent does not wake it; the wait ends with an empty list", async () => {
  const waiting = read("idle", "?wait=0.3");
  await until(() => bus.waiterCount === 1, "the read waits");
  await post({ from: "a", to: "busy", content: "not for idle" });
  const got = await waiting;
  assert.deepEqual(got.body.data, []);
  await read("busy", `?after=msg_999999`);
});

test("a reader that goes away stops waiting", async () => {
  const controller = new AbortController();
  const waiting = read("gone", "?wait=30", { signal: controller.signal });
  await until(() => bus.waiterCount === 1, "the read waits");
  controller.abort();
  await assert.rejects(waiting);
  await until(() => bus.waiterCount === 0, "the waiter is removed");
  assert.equal(bus.mailboxes.has("gone"), false, "an empty mailbox with no reader is forgotten");
});

test("bounds: a full mailbox is 429 with Retry-After, a big message 413; nothing is dropped", async () => {
  const ids = [];
  for (let i = 0; i < 3; i++) ids.push((await post({ from: "a", to: "full", content: `m${i}` })).body.id);
  const refused = await post({ from: "a", to: "full", content: "m3" });
  assert.equal(refused.status, 429);
  assert.equal(refused.headers.get("retry-after"), "1");
  assert.equal(errorCode(refused.body), "mailbox_full");
  assert.equal(refused.body.error.param, "to");
  assert.match(refused.body.error.message, /3 unread messages.*after=<last id>/);
  const held = await read("full");
  assert.deepEqual(held.body.data.map((m) => m.content), ["m0", "m1", "m2"], "the refused post did not push one out");
  await read("full", `?after=${ids[0]}`); // acknowledge one: room for one more
  assert.equal((await post({ from: "a", to: "full", content: "m3" })).status, 200);

  const big = await post({ from: "a", to: "x", content: "é".repeat(101) }); // 202 bytes of UTF-8
  assert.equal(big.status, 413);
  assert.equal(errorCode(big.body), "request_too_large");
  assert.equal(big.body.error.param, "content");
  const bigMeta = await post({ from: "a", to: "x", content: "hi", metadata: { blob: "x".repeat(200) } });
  assert.equal(bigMeta.status, 413);
  assert.equal(bigMeta.body.error.param, "metadata");

  // The bus's total: 1000 bytes across mailboxes.
  const fill = [];
  for (let i = 0; bus.totalBytes + 190 <= 1000; i++) fill.push((await post({ from: "a", to: `t${i}`, content: "y".repeat(190) })).status);
  assert.ok(fill.every((s) => s === 200));
  const over = await post({ from: "a", to: "t-last", content: "y".repeat(190) });
  assert.equal(over.status, 429);
  assert.match(over.body.error.message, /bytes of unread messages/);
  for (const box of [...bus.mailboxes.keys()]) await read(box, "?after=msg_999999");
  assert.equal(bus.totalBytes, 0);

  // Waiting readers per agent.
  const w1 = read("crowd", "?wait=30");
  const w2 = read("crowd", "?wait=30");
  await until(() => bus.waiterCount === 2, "two readers wait");
  const third = await read("crowd", "?wait=30");
  assert.equal(third.status, 429);
  assert.equal(third.body.error.param, "wait");
  await post({ from: "a", to: "crowd", content: "wake" });
  assert.equal((await w1).body.data.length, 1);
  assert.equal((await w2).body.data.length, 1);
  await read("crowd", "?after=msg_999999");
});

test("bad input is a 400 naming the field; the gateway keeps serving", async () => {
  const cases = [
    [{ to: "b", content: "x" }, "from", /from is required/],
    [{ from: "a", content: "x" }, "to", /to is required/],
    [{ from: "a", to: "b" }, "content", /content is required/],
    [{ from: 5, to: "b", content: "x" }, "from", /from must be a string/],
    [{ from: "a", to: "b", content: ["x"] }, "content", /content must be a string, got array/],
    [{ from: "a", to: "b", content: "x", metadata: [1] }, "metadata", /metadata must be an object/],
    [{ from: "a", to: "b", content: "x", priority: 1 }, "priority", /priority is not a known field/],
    [{ from: "a b", to: "b", content: "x" }, "from", /from must be 1-128 characters/],
    [{ from: "a", to: "b".repeat(129), content: "x" }, "to", /to must be 1-128/],
    [[1, 2], null, /the body must be a JSON object/],
  ];
  for (const [json, param, message] of cases) {
    const r = await post(json);
    assert.equal(r.status, 400, JSON.stringify(json));
    assert.equal(errorCode(r.body), "invalid_request");
    assert.equal(r.body.error.param ?? null, param);
    assert.match(r.body.error.message, message);
  }
  const malformed = await gw.request("/v1/agents/messages", { method: "POST", headers: { "content-type": "application/json" } });
  assert.equal(malformed.status, 400);
  const raw = await fetch(`${gw.url}/v1/agents/messages`, { method: "POST", headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" }, body: '{"from": "a", "to":' });
  assert.equal(raw.status, 400);
  assert.match((await raw.json()).error.message, /not valid JSON/);
  const deep = await fetch(`${gw.url}/v1/agents/messages`, { method: "POST", headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" }, body: `{"from":"a","to":"b","content":"x","metadata":${'{"a":'.repeat(100)}1${"}".repeat(100)}}` });
  assert.equal(deep.status, 400, "nested deeper than the gateway's limit");
  assert.equal((await deep.json()).error.param, "metadata");

  const queries = [
    ["?wait=31", "wait", /wait must be a number of seconds from 0 to 30/],
    ["?wait=abc", "wait", /wait must be/],
    ["?wait=-1", "wait", /wait must be/],
    ["?limit=0", "limit", /limit must be an integer from 1 to 1000/],
    ["?limit=1.5", "limit", /limit must be an integer/],
    ["?after=42", "after", /after must be a message id such as "msg_12"/],
    ["?after=msg_1&after=msg_2", "after", /given more than once/],
    ["?since=msg_1", "since", /query parameter since is not known/],
  ];
  for (const [query, param, message] of queries) {
    const r = await read("coder", query);
    assert.equal(r.status, 400, query);
    assert.equal(r.body.error.param, param, query);
    assert.match(r.body.error.message, message, query);
  }
  const badId = await read("bad%20id");
  assert.equal(badId.status, 400);
  assert.equal(badId.body.error.param, "agent_id");
  assert.equal((await gw.request("/health")).status, 200);
  assert.equal((await post({ from: "a", to: "still", content: "ok" })).status, 200);
  await read("still", "?after=msg_999999");
});

test("the token is required; the client token is enough", async () => {
  assert.equal((await gw.request("/v1/agents/coder/messages", { token: null })).status, 401);
  assert.equal((await gw.request("/v1/agents/messages", { token: "wrong-token-0000", json: {} })).status, 401);
});

test("shutdown answers waiting readers (an empty list) and refuses posts", { timeout: 20000 }, async () => {
  const own = new AgentBus();
  const other = await startGateway({ agentBus: own });
  const waiting = other.request("/v1/agents/late/messages?wait=30");
  await until(() => own.waiterCount === 1, "the read waits");
  const closing = other.close();
  const got = await waiting;
  assert.equal(got.status, 200);
  assert.deepEqual(got.body.data, []);
  await closing;
  await assert.rejects(own.post({ from: "a", to: "b", content: "x" }), /shutting down/);
});
