// The /v1 routes, one module per resource: the OpenAI-compatible API (docs/openai.md) and the
// agent message bus. Every route here is a model-client route (the client token may call it);
// the model calls go through admission (admission.mjs MODEL_ROUTES). Errors of the OpenAI API
// routes use OpenAI's envelope (errors.mjs envelopeFor); the agent bus keeps the native one.

import agentRoutes from "./agents.mjs";
import chatRoutes from "./chat.mjs";
import modelRoutes from "./models.mjs";
import responseRoutes from "./responses.mjs";

/** Every /v1 resource module, registered with the app's route options; add new ones here. */
export const V1_MODULES = Object.freeze([modelRoutes, chatRoutes, responseRoutes, agentRoutes]);

export default async function v1Routes(app, opts) {
  for (const routes of V1_MODULES) await app.register(routes, opts);
}
