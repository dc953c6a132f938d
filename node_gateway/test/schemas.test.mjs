// Response schemas on the read routes (/health, /models, /auth/status, /v1/models): fastify
// serialises the replies by them and refuses a reply that breaks them (a 500, never a wrong 200);
// fields a schema does not name are kept (additionalProperties).

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startGateway } from "./helpers.mjs";

let gw;
let listModels;
before(async () => {
  gw = await startGateway();
  listModels = gw.adapter.listModels.bind(gw.adapter);
});
after(() => gw?.close());

describe("response schemas", () => {
  test("the replies keep their documented shape and every field", async () => {
    const health = await gw.request("/health");
    assert.equal(health.status, 200);
    assert.deepEqual(Object.keys(health.body.admission).sort(), ["inflight", "limit", "queue_limit", "queued", "shed"]);
    const models = await gw.request("/models");
    const echo = models.body.models.find((m) => m.provider === "echo");
    assert.deepEqual(echo, (await listModels()).find((m) => m.provider === "echo"));
    assert.equal((await gw.request("/auth/status")).status, 200);
    const v1 = await gw.request("/v1/models");
    assert.deepEqual(v1.body.data.find((m) => m.id === "echo/echo"), { id: "echo/echo", object: "model", created: 0, owned_by: "echo" });
  });

  test("a field the schema does not name passes through", async (t) => {
    t.after(() => { gw.adapter.listModels = listModels; });
    gw.adapter.listModels = async () => (await listModels()).map((m) => ({ ...m, extra_note: "kept" }));
    const models = await gw.request("/models");
    assert.equal(models.status, 200);
    assert.ok(models.body.models.every((m) => m.extra_note === "kept"));
  });

  test("a reply that breaks its schema is a 500, not a wrong 200", async (t) => {
    t.after(() => { gw.adapter.listModels = listModels; });
    gw.adapter.listModels = async () => (await listModels()).map(({ provider, ...rest }) => rest);
    const models = await gw.request("/models");
    assert.equal(models.status, 500);
    assert.equal(models.body.error.type, "internal_error");
    assert.ok(gw.logs.some((line) => line.includes("internal_error") && line.includes("provider")));
  });
});

describe("schemas compile on a route's first request, not at start-up", () => {
  test("nothing compiles while the app boots; each route compiles once, with ajv's errors kept", async () => {
    const { default: Fastify } = await import("fastify");
    const { compileOnFirstUse } = await import("../app.mjs");
    const compiled = [];
    const counting = (selector) => (...args) => {
      const build = selector(...args);
      return (route) => {
        compiled.push(`${route.method} ${route.url} ${route.httpPart ?? "response"}`);
        return build(route);
      };
    };
    const { createRequire } = await import("node:module");
    const req = createRequire(import.meta.resolve("fastify"));
    const app = Fastify({
      schemaController: {
        compilersFactory: {
          buildValidator: compileOnFirstUse(counting(req("@fastify/ajv-compiler")())),
          buildSerializer: compileOnFirstUse(counting(req("@fastify/fast-json-stringify-compiler")())),
        },
      },
    });
    const body = { type: "object", required: ["n"], properties: { n: { type: "integer" } } };
    const reply = { 200: { type: "object", properties: { n: { type: "integer" } } } };
    app.post("/a", { schema: { body, response: reply } }, async (r) => ({ n: r.body.n, dropped: true }));
    app.post("/b", { schema: { body } }, async () => ({}));
    await app.ready();
    assert.deepEqual(compiled, [], "no schema compiled at start-up");
    const bad = await app.inject({ method: "POST", url: "/a", payload: { n: "x" } });
    assert.equal(bad.statusCode, 400);
    assert.match(bad.json().message, /body\/n must be integer/);
    const good = await app.inject({ method: "POST", url: "/a", payload: { n: 2 } });
    assert.deepEqual(good.json(), { n: 2 }); // serialised by the response schema
    await app.inject({ method: "POST", url: "/a", payload: { n: 3 } });
    assert.deepEqual(compiled.sort(), ["POST /a body", "POST /a response"], "once per route, /b never");
    await app.close();
  });
});
