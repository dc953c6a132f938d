// Logging in and out through pi (docs/protocol.md "Logging in"), admin token only: the client
// token handed to other tools can neither log in or out nor store keys.
//   GET    /auth/providers              providers pi can log in to, their methods, configured or not
//   POST   /auth/login                  {provider, method?, timeout_ms?} -> SSE flow events
//   POST   /auth/login/:flow_id/input   {value, prompt_id?} answers the pending prompt
//   DELETE /auth/login/:flow_id         cancels (pi's callback server is closed when it answers)
//   PUT    /auth/:provider/api-key      {key} stores an API key through pi's API key login
//   DELETE /auth/:provider              logs out (removes pi's stored credential)
// The stream's client going away cancels its flow. Flow state lives in login_flows.mjs.

import { sseFrame } from "../convert.mjs";
import { GatewayError, addSecret, envelope, invalid } from "../errors.mjs";
import { FLOW_LIMITS, redactLogin } from "../login_flows.mjs";

const ADMIN = { admin: true };
const SSE_HEADERS = { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" };
const SMALL_BODY = 65536;
const PROVIDER_ID = { type: "string", minLength: 1, maxLength: 128 };

const loginBody = {
  type: "object",
  required: ["provider"],
  additionalProperties: false,
  properties: {
    provider: PROVIDER_ID,
    method: { type: "string", enum: ["oauth", "api_key"] },
    timeout_ms: { type: "integer", minimum: 1 },
  },
};
const inputBody = {
  type: "object",
  required: ["value"],
  additionalProperties: false,
  properties: { value: { type: "string", maxLength: FLOW_LIMITS.inputChars }, prompt_id: { type: "integer", minimum: 1 } },
};
const keyBody = {
  type: "object",
  required: ["key"],
  additionalProperties: false,
  properties: { key: { type: "string", minLength: 1, maxLength: FLOW_LIMITS.inputChars } },
};
const providerParams = { type: "object", properties: { provider: PROVIDER_ID } };

/** Failures of pi's store or flows outside a stream: 400 with pi's (redacted) reason. */
function asGatewayError(err, what) {
  if (err instanceof GatewayError) return err;
  return new GatewayError("login_failed", `${what} failed: ${redactLogin(String(err?.message ?? err)).slice(0, 1000)}`);
}

export default async function authLoginRoutes(app, { adapter, loginFlows, state }) {
  app.get("/auth/providers", { config: ADMIN }, async () => ({ providers: await adapter.loginProviders() }));

  app.post("/auth/login", { config: ADMIN, bodyLimit: SMALL_BODY, schema: { body: loginBody } }, async (request, reply) => {
    const { provider, timeout_ms: timeoutMs } = request.body;
    const { method } = adapter.loginMethod(provider, request.body.method); // 404 / 400 before any stream
    if (state.shuttingDown) throw new GatewayError("shutting_down", "the gateway is shutting down");
    const flow = loginFlows.start({
      provider,
      method,
      timeoutMs,
      run: (interaction) => adapter.login(provider, method, interaction),
    });
    state.inflight.add(flow); // shutdown aborts it like a model call
    const res = reply.raw;
    reply.hijack();
    res.writeHead(200, { ...SSE_HEADERS, "x-login-flow-id": flow.id });
    res.write(sseFrame("start", { id: flow.id, provider, method, timeout_ms: flow.timeoutMs }));
    const onClose = () => {
      if (!res.writableFinished) loginFlows.cancel(flow.id, "client").catch(() => {}); // nobody reads it
    };
    res.once("close", onClose);
    try {
      for await (const ev of flow.events()) {
        if (res.destroyed) break;
        if (ev.type === "error") {
          request.gw.errorType = ev.data.error.type;
          res.write(sseFrame("error", envelope(new GatewayError(ev.data.error.type, ev.data.error.message), request.id)));
        } else {
          res.write(sseFrame(ev.type, ev.data));
        }
      }
    } finally {
      state.inflight.delete(flow);
      res.off("close", onClose);
      if (!res.destroyed) res.end();
    }
    return reply;
  });

  app.post(
    "/auth/login/:flow_id/input",
    { config: ADMIN, bodyLimit: SMALL_BODY, schema: { body: inputBody } },
    async (request) => {
      const flow = loginFlows.get(request.params.flow_id);
      const { id } = flow.answer(request.body.prompt_id, request.body.value);
      return { id: flow.id, prompt_id: id };
    },
  );

  app.delete("/auth/login/:flow_id", { config: ADMIN }, async (request) => {
    const flow = await loginFlows.cancel(request.params.flow_id);
    return { id: flow.id, cancelled: true };
  });

  app.put(
    "/auth/:provider/api-key",
    {
      config: ADMIN,
      bodyLimit: SMALL_BODY,
      schema: { params: providerParams, body: keyBody },
      preValidation: async (request) => {
        addSecret(request.body?.key); // redacted from here on, whatever happens to the request
      },
    },
    async (request) => {
      const { key } = request.body;
      if (/[\s\u0000-\u001f\u007f]/.test(key)) throw invalid("body.key has whitespace or control characters; give the key alone");
      try {
        return await adapter.storeApiKey(request.params.provider, key);
      } catch (err) {
        throw asGatewayError(err, `storing the API key for "${request.params.provider}"`);
      }
    },
  );

  app.delete("/auth/:provider", { config: ADMIN, schema: { params: providerParams } }, async (request) => {
    try {
      return await adapter.logout(request.params.provider);
    } catch (err) {
      throw asGatewayError(err, `logging out of "${request.params.provider}"`);
    }
  });
}
