// PUT /providers: register or replace providers at run time, in pi's models.json provider format
// (`{"providers": {"<id>": <block>}}`), without touching the user's files. The Python side uses
// it to point provider `local` at the embedded model's server once that server has started.

import { addSecret, invalid } from "../errors.mjs";

export default async function providerRoutes(app, { adapter }) {
  app.put("/providers", async (request) => {
    const providers = request.body?.providers;
    if (!providers || typeof providers !== "object" || Array.isArray(providers) || !Object.keys(providers).length) {
      throw invalid('body must be {"providers": {"<id>": <models.json provider block>}}');
    }
    for (const block of Object.values(providers)) {
      if (typeof block?.apiKey === "string" && !block.apiKey.startsWith("$")) addSecret(block.apiKey); // never echoed
    }
    try {
      await adapter.registerProviders(providers);
    } catch (err) {
      if (err?.type) throw err;
      throw invalid(String(err?.message ?? err));
    }
    return { registered: Object.keys(providers) };
  });
}
