// GET /auth/status: per provider, configured or not and from where, and the user's pi files
// that do not parse (file and position only). Never a secret.

const string = { type: "string" };

/** The reply, serialised (and checked: a missing or mistyped field is a 500) by fastify. */
export const authStatusSchema = {
  type: "object",
  required: ["providers", "providers_error", "file_errors"],
  additionalProperties: true,
  properties: {
    providers: {
      type: "array",
      items: {
        type: "object",
        required: ["provider", "configured", "source"],
        additionalProperties: true,
        properties: {
          provider: string,
          configured: { type: "boolean" },
          source: { type: ["string", "null"] },
          detail: string,
          env_vars: { type: "array", items: string },
        },
      },
    },
    providers_error: { type: ["object", "null"], additionalProperties: string },
    file_errors: {
      type: "array",
      items: { type: "object", required: ["file", "message"], properties: { file: string, message: string } },
    },
  },
};

export default async function authRoutes(app, { adapter }) {
  app.get("/auth/status", { schema: { response: { 200: authStatusSchema } } }, async () => {
    const providers = await adapter.authStatus();
    return { providers, providers_error: adapter.providersError(), file_errors: adapter.fileErrors() };
  });
}
