// PUT /providers (admin token only): register or replace providers at run time, in pi's
// models.json provider format (`{"providers": {"<id>": <block>}}`), without touching the user's
// files. The Python side uses it to point provider `local` at the embedded model's server once
// that server has started. All or nothing: a 400 registers nothing (pi_adapter registerProviders).

import { invalid, redact } from "../errors.mjs";
import { LIMITS } from "../provider_blocks.mjs";

export default async function providerRoutes(app, { adapter, providerEnvAllow }) {
  app.put("/providers", { config: { admin: true }, bodyLimit: LIMITS.bodyBytes }, async (request) => {
    const providers = request.body?.providers;
    try {
      await adapter.registerProviders(providers, { runtime: true, envAllow: providerEnvAllow });
    } catch (err) {
      if (err?.type) throw err;
      throw invalid(redact(String(err?.message ?? err)));
    }
    return { registered: Object.keys(providers) };
  });
}
