// GET /v1/models and GET /v1/models/{model}: pi's catalog in OpenAI's list shape. `id` is
// `provider/id`, `owned_by` the provider, `created` 0 (pi records no creation date). The list
// has the models whose provider has credentials (echo/echo always); `?all=true` lists every one.
// Retrieve takes the id URL-encoded (`local%2Fsmollm2-135m`) or as plain path segments, and
// resolves shorthand ids as the chat routes do.

import { invalid } from "../../errors.mjs";

const openaiModel = (m) => ({ id: `${m.provider}/${m.id}`, object: "model", created: 0, owned_by: m.provider });

/** OpenAI's Model object; the replies are serialised (and checked) by fastify. */
export const openaiModelSchema = {
  type: "object",
  required: ["id", "object", "created", "owned_by"],
  properties: { id: { type: "string" }, object: { const: "model" }, created: { type: "integer" }, owned_by: { type: "string" } },
};
const listSchema = {
  type: "object",
  required: ["object", "data"],
  properties: { object: { const: "list" }, data: { type: "array", items: openaiModelSchema } },
};

export default async function v1ModelRoutes(app, { adapter }) {
  app.get("/v1/models", { schema: { response: { 200: listSchema } } }, async (request) => {
    const all = request.query?.all;
    if (all !== undefined && all !== "true" && all !== "false") throw invalid('all must be "true" or "false"', { param: "all" });
    const models = await adapter.listModels();
    const data = (all === "true" ? models : models.filter((m) => m.available)).map(openaiModel);
    return { object: "list", data };
  });

  app.get("/v1/models/*", { schema: { response: { 200: openaiModelSchema } } }, async (request) => {
    let name;
    try {
      name = decodeURIComponent(request.params["*"] ?? "");
    } catch {
      throw invalid("the model id in the path is not valid URL encoding", { param: "model" });
    }
    const model = await adapter.resolve(name);
    request.gw.model = `${model.provider}/${model.id}`;
    return openaiModel(model);
  });
}
