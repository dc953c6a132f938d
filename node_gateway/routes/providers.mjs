// PUT /providers (admin token only): register or replace providers at run time, in pi's
// models.json provider format (`{"providers": {"<id>": <block>}}`), without touching the user's
// files. The Python side uses it to point provider `local` at the embedded model's server once
// that server has started. All or nothing: a 400 registers nothing (pi_adapter registerProviders).

import { addSecret, invalid } from "../errors.mjs";
import { LIMITS } from "../provider_blocks.mjs";

export default async function providerRoutes(app, { adapter, providerEnvAllow }) {
  app.put("/providers", { config: { admin: true }, bodyLimit: LIMITS.bodyBytes }, async (request) => {
    const providers = request.body?.providers;
    try {
      await adapter.registerProviders(providers, { runtime: true, envAllow: providerEnvAllow });
    } catch (err) {
      if (err?.type) throw err;
      throw invalid(String(err?.message ?? err));
    } finally {
      const blocks = providers && typeof providers === "object" ? Object.values(providers) : [];
      if (blocks.length <= LIMITS.providersPerRequest) blocks.forEach(rememberSecrets); // never echoed
    }
    return { registered: Object.keys(providers) };
  });
}

/** Every key and header value of a block, whether it was accepted or not, becomes a secret to redact. */
function rememberSecrets(block) {
  if (!block || typeof block !== "object") return;
  addSecret(block.apiKey);
  for (const headers of [block.headers, ...(Array.isArray(block.models) ? block.models.map((m) => m?.headers) : [])]) {
    if (headers && typeof headers === "object") for (const v of Object.values(headers)) addSecret(v);
  }
}
