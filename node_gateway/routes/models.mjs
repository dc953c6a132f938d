// GET /models: every model pi knows, whether it has credentials, and the model pi starts with.
// GET /models/default: that choice alone; PUT /models/default (admin token only): make a model pi's
// default (settings.json, through pi's SettingsManager).

import { invalid } from "../errors.mjs";

const string = { type: "string" };
const number = { type: "number" };
const strings = { type: "array", items: string };

/** One /models entry (docs/protocol.md "GET /models"); cost in $ per 1M tokens. */
export const modelEntrySchema = {
  type: "object",
  required: ["provider", "id", "name", "api", "reasoning", "thinking_levels", "input", "context_window",
    "max_tokens", "cost", "available", "options"],
  additionalProperties: true,
  properties: {
    provider: string,
    id: string,
    name: string,
    api: string,
    reasoning: { type: "boolean" },
    thinking_levels: strings,
    input: strings,
    context_window: number,
    max_tokens: number,
    cost: {
      type: "object",
      required: ["input", "output", "cache_read", "cache_write"],
      properties: { input: number, output: number, cache_read: number, cache_write: number },
    },
    available: { type: "boolean" },
    options: strings,
  },
};

/** The reply, serialised (and checked: a missing or mistyped field is a 500) by fastify. */
export const modelsSchema = {
  type: "object",
  required: ["models", "default_model", "models_json_error", "providers_error"],
  additionalProperties: true,
  properties: {
    models: { type: "array", items: modelEntrySchema },
    default_model: {
      type: ["object", "null"],
      required: ["provider", "id", "source"],
      additionalProperties: true,
      properties: { provider: string, id: string, source: { type: "string", enum: ["settings", "pi"] } },
    },
    default_model_warning: { type: ["string", "null"] },
    settings_default_model: {
      type: ["object", "null"],
      required: ["provider", "id"],
      additionalProperties: true,
      properties: { provider: string, id: string },
    },
    models_json_error: { type: ["string", "null"] },
    providers_error: { type: ["object", "null"], additionalProperties: string },
  },
};

export default async function modelRoutes(app, { adapter }) {
  app.get("/models", { schema: { response: { 200: modelsSchema } } }, async () => {
    const models = await adapter.listModels();
    const { model, warning } = await adapter.defaultModel();
    return {
      models,
      default_model: model,
      default_model_warning: warning,
      settings_default_model: adapter.settingsDefaultModel(),
      models_json_error: adapter.modelsJsonError(),
      providers_error: adapter.providersError(),
    };
  });
  app.get("/models/default", async () => {
    await adapter.reload();
    const { model, warning } = await adapter.defaultModel();
    return { default_model: model, default_model_warning: warning, settings_default_model: adapter.settingsDefaultModel() };
  });
  app.put("/models/default", { config: { admin: true } }, async (request) => {
    const name = request.body?.model;
    if (typeof name !== "string" || !name) throw invalid('body must be {"model": "<provider>/<id>"}');
    const saved = await adapter.setDefaultModel(name);
    await adapter.reload();
    const { model, warning } = await adapter.defaultModel();
    return { settings_default_model: saved, default_model: model, default_model_warning: warning };
  });
}
