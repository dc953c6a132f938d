// GET /auth/status: per provider, configured or not and from where. Never a secret.

export default async function authRoutes(app, { adapter }) {
  app.get("/auth/status", async () => ({
    providers: await adapter.authStatus(),
    providers_error: adapter.providersError(),
  }));
}
