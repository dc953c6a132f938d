// Admission control: the bound on in-flight model calls, the FIFO wait queue, and the 503
// `overloaded` answer with Retry-After once both are full (admission.mjs).

import assert from "node:assert/strict";
import { once } from "node:events";
import { after, before, describe, test } from "node:test";
import { Admission, admissionFor, admitModelRoutes, MODEL_ROUTES, RETRY_AFTER_S } from "../admission.mjs";
import { chat, makeAgentDir, startFakeUpstream, startGateway, upstreamProvider } from "./helpers.mjs";

describe("Admission (unit)", () => {
  test("slots up to the limit, then the queue in arrival order, then overloaded", async () => {
    const adm = new Admission({ limit: 2, queue: 2 });
    const r1 = await adm.acquire();
    await adm.acquire();
    const order = [];
    const w3 = adm.acquire().then((release) => (order.push(3), release));
    const w4 = adm.acquire().then((release) => (order.push(4), release));
    assert.deepEqual(adm.stats(), { inflight: 2, queued: 2, limit: 2, queue_limit: 2, shed: 0 });
    await assert.rejects(adm.acquire(), (err) => err.type === "overloaded" && err.statusCode === 503 && err.extra.retry_after === RETRY_AFTER_S);
    assert.equal(adm.stats().shed, 1);
    r1();
    r1(); // a second release of the same slot is a no-op
    const r3 = await w3;
    assert.deepEqual(order, [3]);
    assert.equal(adm.stats().inflight, 2);
    r3();
    await w4;
    assert.deepEqual(order, [3, 4]);
    assert.deepEqual(adm.stats(), { inflight: 2, queued: 0, limit: 2, queue_limit: 2, shed: 1 });
  });

  test("a new request never overtakes one already waiting", async () => {
    const adm = new Admission({ limit: 1, queue: 5 });
    const release = await adm.acquire();
    const first = adm.acquire();
    release(); // the slot goes to `first` before anyone else can ask
    const second = adm.acquire();
    await first;
    assert.equal(adm.stats().queued, 1, "the later request waits behind the earlier one");
    second.cancel();
  });

  test("a cancelled waiter leaves the queue without taking a slot", async () => {
    const adm = new Admission({ limit: 1, queue: 2 });
    const release = await adm.acquire();
    const gone = adm.acquire();
    const kept = adm.acquire();
    gone.cancel();
    assert.equal(adm.stats().queued, 1);
    release();
    await kept;
    assert.deepEqual(adm.stats(), { inflight: 1, queued: 0, limit: 1, queue_limit: 2, shed: 0 });
    let settled = false;
    gone.then(() => (settled = true), () => (settled = true));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(settled, false, "a cancelled waiter is never granted");
  });

  test("a wait longer than maxWaitMs is shed, and close() refuses every waiter", async () => {
    const adm = new Admission({ limit: 1, queue: 3, maxWaitMs: 20 });
    await adm.acquire();
    await assert.rejects(adm.acquire(), (err) => err.type === "overloaded");
    const waiting = new Admission({ limit: 1, queue: 3 });
    await waiting.acquire();
    const w = waiting.acquire();
    waiting.close();
    await assert.rejects(w, (err) => err.type === "shutting_down");
    await assert.rejects(waiting.acquire(), (err) => err.type === "shutting_down");
  });

  test("the hook goes on every model route, POST only, ahead of the route's own hooks", () => {
    const routes = [];
    const fake = { addHook: (name, fn) => routes.push(fn) };
    const adm = new Admission();
    admitModelRoutes(fake, adm);
    const own = () => {};
    const chat = { url: "/v1/chat/completions", method: "POST", onRequest: own };
    const health = { url: "/health", method: "GET" };
    const getLm = { url: "/lm/complete", method: ["GET", "HEAD"] };
    for (const route of [chat, health, getLm]) routes[0](route);
    assert.deepEqual(chat.onRequest, [adm.onRequest, own]);
    assert.equal(health.onRequest, undefined);
    assert.equal(getLm.onRequest, undefined);
    assert.deepEqual(MODEL_ROUTES, ["/lm/complete", "/lm/stream", "/v1/chat/completions", "/v1/responses"]);
  });

  test("limits are split across workers, at least one slot each", () => {
    assert.deepEqual(admissionFor({ maxInflight: 64, maxQueue: 192, workers: 2 }).stats(), {
      inflight: 0, queued: 0, limit: 32, queue_limit: 96, shed: 0,
    });
    assert.equal(admissionFor({ maxInflight: 1, maxQueue: 0, workers: 4 }).stats().limit, 1);
    assert.throws(() => new Admission({ limit: 0 }), /limit must be an integer >= 1/);
  });
});

describe("the gateway under a full bound (slow upstream)", () => {
  let up;
  let gw;
  before(async () => {
    up = await startFakeUpstream();
    const agentDir = makeAgentDir({ providers: { up: upstreamProvider(up.url) } });
    gw = await startGateway({ agentDir, admission: new Admission({ limit: 2, queue: 1 }) });
  });
  after(async () => {
    await gw?.close();
    await up?.close();
  });

  test("two hanging calls fill the slots, one waits, the next gets 503 overloaded with Retry-After at once", async () => {
    const seen = [];
    const onRequest = ({ body }) => seen.push(body.messages.at(-1).content);
    up.events.on("request", onRequest);
    const controllers = [];
    const call = (mark, path = "/lm/complete") => {
      const controller = new AbortController();
      controllers.push(controller);
      return gw
        .request(path, { json: chat("up/hang", { messages: [{ role: "user", content: mark }] }), signal: controller.signal })
        .catch((err) => err);
    };
    try {
      const reached = once(up.events, "request").then(() => once(up.events, "request"));
      call("slot-1");
      call("slot-2", "/lm/stream");
      await reached;
      assert.deepEqual(seen.sort(), ["slot-1", "slot-2"]);

      const queued = call("queued-3");
      // The queued request is counted before its body is read; poll /health until it shows.
      let health;
      do health = (await gw.request("/health")).body;
      while (health.admission.queued < 1);
      assert.deepEqual(health.admission, { inflight: 2, queued: 1, limit: 2, queue_limit: 1, shed: 0 });

      const shed = await gw.request("/lm/complete", { json: chat("up/ok") });
      assert.equal(shed.status, 503);
      assert.equal(shed.headers.get("retry-after"), String(RETRY_AFTER_S));
      assert.equal(shed.body.error.type, "overloaded");
      assert.equal(shed.body.error.retry_after, RETRY_AFTER_S);
      assert.match(shed.body.error.message, /at capacity.*AIIPYTHON_GATEWAY_MAX_INFLIGHT/);
      const streamShed = await gw.request("/lm/stream", { json: chat("up/ok") });
      assert.equal(streamShed.status, 503);
      assert.equal(streamShed.body.error.type, "overloaded");
      assert.ok(!seen.includes("Say hello."), "a shed request never reaches the upstream");

      // The first client goes away: its slot passes to the queued request, which reaches the upstream.
      const third = once(up.events, "request");
      controllers[0].abort();
      const [{ body }] = await third;
      assert.equal(body.messages.at(-1).content, "queued-3");
      assert.equal((await gw.request("/health")).body.admission.shed, 2);
      const lines = gw.logs.map((line) => JSON.parse(line));
      const summaries = lines.filter((l) => l.event === "overloaded");
      assert.ok(summaries.length >= 1 && summaries.every((l) => l.level === "warn" && l.limit === 2), "a warn summary line");
      const shedLines = lines.filter((l) => l.event === "request" && l.status === 503);
      assert.ok(shedLines.every((l) => l.level === "info"), "a shed request is not a warn line of its own");
      void queued;
    } finally {
      up.events.off("request", onRequest);
      for (const c of controllers) c.abort();
    }
  });

  test("slots are given back: after the hanging clients leave, calls succeed again", async () => {
    let health;
    do health = (await gw.request("/health")).body;
    while (health.admission.inflight > 0 || health.admission.queued > 0);
    const results = await Promise.all([1, 2, 3].map(() => gw.request("/lm/complete", { json: chat("up/ok") })));
    assert.deepEqual(results.map((r) => r.status), [200, 200, 200]);
  });

  test("a bad request is refused with 400 after admission, and gives its slot back", async () => {
    const bad = await gw.request("/lm/complete", { json: { model: "up/ok" } });
    assert.equal(bad.status, 400);
    let health;
    do health = (await gw.request("/health")).body;
    while (health.admission.inflight > 0);
    assert.equal(health.admission.inflight, 0);
  });
});
