// GET /auth/status: per provider, configured or not and from where, and the user's pi files
// that do not parse (file and position only). Never a secret.

export default async function authRoutes(app, { adapter }) {
  app.get("/auth/status", async () => {
    const providers = await adapter.authStatus();
    return { providers, providers_error: adapter.providersError(), file_errors: adapter.fileErrors() };
  });
}
