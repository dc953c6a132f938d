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
