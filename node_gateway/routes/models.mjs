// GET /models: every model pi knows, whether it has credentials, and the user's default model.

export default async function modelRoutes(app, { adapter }) {
  app.get("/models", async () => ({
    models: await adapter.listModels(),
    default_model: adapter.defaultModel(),
    models_json_error: adapter.modelsJsonError(),
    providers_error: adapter.providersError(),
  }));
}
