// AIIPYTHON_GATEWAY_WORKERS=2: one readiness line for the group, one port, a run-time provider
// (PUT /providers) served by every worker, the token on every worker, and no worker left behind
// when the primary's stdin closes or the primary is SIGKILLed (cluster.mjs).

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Client } from "undici";
import { workerCount } from "../cluster.mjs";
import { ADMIN_TOKEN, TOKEN, UPSTREAM_KEY, chat, makeAgentDir, spawnGateway, startFakeUpstream, upstreamProvider } from "./helpers.mjs";

const auth = { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" };

/** One keep-alive connection: every request on it is served by the same worker. */
async function call(client, method, path, json, token = TOKEN) {
  const headers = { ...auth, authorization: `Bearer ${token}` };
  const res = await client.request({ method, path, headers, body: json === undefined ? undefined : JSON.stringify(json) });
  const text = await res.body.text();
  return { status: res.statusCode, body: JSON.parse(text) };
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Wait (bounded) until none of `pids` runs; true if they all ended. */
async function allGone(pids, ms = 10000) {
  const deadline = Date.now() + ms;
  while (pids.some(alive)) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return true;
}

test("AIIPYTHON_GATEWAY_WORKERS: unset, auto, a count, nonsense", () => {
  assert.deepEqual(workerCount(undefined, 1, 8), { workers: 1 });
  assert.deepEqual(workerCount("auto", 1, 8), { workers: 8 });
  assert.deepEqual(workerCount(" 3 ", 1, 8), { workers: 3 });
  assert.match(workerCount("0", 1, 8).error, /"auto" or an integer >= 1/);
  assert.match(workerCount("two", 1, 8).error, /AIIPYTHON_GATEWAY_WORKERS/);
});

let up;
let gw;
const clients = [];
let byPid; // worker pid -> a keep-alive client served by that worker
before(async () => {
  up = await startFakeUpstream();
  const agentDir = makeAgentDir();
  gw = await spawnGateway({ env: { AIIPYTHON_GATEWAY_TOKEN: TOKEN, AIIPYTHON_GATEWAY_ADMIN_TOKEN: ADMIN_TOKEN, AIIPYTHON_GATEWAY_WORKERS: "2", PI_CODING_AGENT_DIR: agentDir } });
});
after(async () => {
  for (const c of clients) await c.close().catch(() => {});
  gw?.child.kill("SIGKILL");
  await up?.close();
});

test("two workers: one readiness line; a provider registered at run time is served by both", async () => {
  const { ready } = gw;
  assert.equal(ready.event, "ready");
  assert.equal(ready.pid, gw.child.pid, "the readiness line names the primary, the process to signal");
  assert.equal(ready.workers, 2);
  assert.equal(new Set(ready.worker_pids).size, 2);
  assert.equal(gw.stdout().trim().split("\n").length, 1, "exactly one line on stdout for the group");

  // Open connections until each worker holds one (the primary hands connections out in turn).
  byPid = new Map();
  for (let i = 0; i < 20 && byPid.size < 2; i++) {
    const client = new Client(ready.url, { pipelining: 1, connections: 1 });
    clients.push(client);
    const health = await call(client, "GET", "/health");
    assert.equal(health.status, 200, "the token works on every worker");
    if (!byPid.has(health.body.pid)) byPid.set(health.body.pid, client);
  }
  assert.deepEqual([...byPid.keys()].sort(), [...ready.worker_pids].sort(), "both workers answer on the one port");
  const [first, second] = [...byPid.values()];

  const late = { late: upstreamProvider(up.url, { apiKey: UPSTREAM_KEY, ids: ["ok"] }) };
  assert.equal((await call(first, "POST", "/lm/complete", chat("late/ok"))).status, 404, "not known before registration");
  assert.equal((await call(first, "PUT", "/providers", { providers: late })).status, 403, "the client token may not");
  const cmd = { cmd: { ...late.late, apiKey: "!id" } };
  assert.equal((await call(first, "PUT", "/providers", { providers: cmd }, ADMIN_TOKEN)).status, 400, "literal keys only");
  const put = await call(first, "PUT", "/providers", { providers: late }, ADMIN_TOKEN);
  assert.equal(put.status, 200);
  assert.deepEqual(put.body.registered, ["late"]);

  for (const [pid, client] of byPid) {
    const health = await call(client, "GET", "/health");
    assert.equal(health.body.pid, pid, "still pinned to the same worker");
    const r = await call(client, "POST", "/lm/complete", chat("late/ok"));
    assert.equal(r.status, 200, `worker ${pid} serves the provider registered on ${[...byPid.keys()][0]}`);
    assert.equal(r.body.model.provider, "late");
  }
  void second;
});

test("two workers: the agent bus is one store (posted on one worker, read and long-polled on the other)", async () => {
  const [[pidA, a], [pidB, b]] = [...byPid];
  const posted = await call(a, "POST", "/v1/agents/messages", { from: "planner", to: "coder", content: "step 1" });
  assert.equal(posted.status, 200);
  assert.equal((await call(a, "GET", "/health")).body.pid, pidA);
  const read = await call(b, "GET", "/v1/agents/coder/messages");
  assert.equal((await call(b, "GET", "/health")).body.pid, pidB);
  assert.deepEqual(read.body.data, [posted.body], `worker ${pidB} reads what worker ${pidA} stored`);

  // A reader waiting on B is answered by a post on A (the primary wakes it).
  // (If the post lands before the read is registered, the read answers at once with it: the
  // same answer. The in-process test in agents.test.mjs checks the waiting case itself.)
  const waiting = call(b, "GET", `/v1/agents/coder/messages?after=${posted.body.id}&wait=30`);
  const second = await call(a, "POST", "/v1/agents/messages", { from: "planner", to: "coder", content: "step 2", metadata: { n: 2 } });
  assert.equal(second.status, 200);
  const got = await waiting;
  assert.equal(got.status, 200);
  assert.deepEqual(got.body.data, [second.body]);
  const acked = await call(a, "GET", `/v1/agents/coder/messages?after=${second.body.id}`);
  assert.deepEqual(acked.body.data, [], "acknowledged messages are freed for every worker");
  // Bad input is refused on the worker, before any IPC.
  const bad = await call(a, "POST", "/v1/agents/messages", { from: "planner", to: "coder", content: 5 });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.error.param, "content");
});

test("a SIGKILLed primary leaves no worker behind", async () => {
  const pids = gw.ready.worker_pids;
  assert.ok(pids.every(alive));
  gw.child.kill("SIGKILL");
  await gw.exited;
  assert.ok(await allGone(pids), `workers still running after the primary was killed: ${pids.filter(alive)}`);
});

test("stdin EOF at the primary stops the whole group, exit 0", async () => {
  const other = await spawnGateway({ env: { AIIPYTHON_GATEWAY_TOKEN: TOKEN, AIIPYTHON_GATEWAY_ADMIN_TOKEN: ADMIN_TOKEN, AIIPYTHON_GATEWAY_WORKERS: "2", PI_CODING_AGENT_DIR: makeAgentDir() } });
  const pids = other.ready.worker_pids;
  other.child.stdin.end();
  const { code } = await other.exited;
  assert.equal(code, 0);
  assert.ok(await allGone(pids), "every worker ends with the primary");
});
