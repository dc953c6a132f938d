// The agent message bus (docs/protocol.md "Agent message bus"): agents post messages to each
// other's mailboxes and read their own, with a bounded long poll. The store is agent_bus.mjs
// (in this process, or in the cluster primary over IPC); it is in memory only.
//   POST /v1/agents/messages                 {from, to, content, metadata?} -> the stored message
//   GET  /v1/agents/:agent_id/messages       ?after=<id>&wait=<seconds>&limit=<n> -> {object: "list", data, ...}

import { BusError } from "../../agent_bus.mjs";
import { GatewayError } from "../../errors.mjs";

const QUERY_FIELDS = ["after", "wait", "limit"];
/** A message is at most 64 KiB of content + metadata; JSON escaping may take a body to 6x that. */
const POST_BODY_LIMIT = 1048576;

function toGatewayError(err) {
  if (!(err instanceof BusError)) throw err;
  const extra = { param: err.param ?? undefined, retry_after: err.retryAfter };
  return new GatewayError(err.type, err.message, extra);
}

export default async function agentRoutes(app, { agentBus }) {
  app.addHook("preClose", async () => agentBus.close()); // waiting readers answer before the server closes

  app.post("/v1/agents/messages", { bodyLimit: POST_BODY_LIMIT }, async (request) => {
    try {
      return await agentBus.post(request.body);
    } catch (err) {
      throw toGatewayError(err);
    }
  });

  app.get("/v1/agents/:agent_id/messages", async (request, reply) => {
    const query = request.query ?? {};
    for (const key of Object.keys(query)) {
      if (!QUERY_FIELDS.includes(key)) {
        throw new GatewayError("invalid_request", `query parameter ${key} is not known (after, wait, limit)`, { param: key });
      }
      if (typeof query[key] !== "string") {
        throw new GatewayError("invalid_request", `query parameter ${key} is given more than once`, { param: key });
      }
    }
    const controller = new AbortController();
    const res = reply.raw;
    const onClose = () => controller.abort();
    res.once("close", onClose); // the reader went away: stop waiting for it
    try {
      return await agentBus.read(
        { agentId: request.params.agent_id, after: query.after, wait: query.wait, limit: query.limit },
        { signal: controller.signal },
      );
    } catch (err) {
      throw toGatewayError(err);
    } finally {
      res.off("close", onClose);
    }
  });
}
