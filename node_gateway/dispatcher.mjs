// The process-wide HTTP client pool for every upstream call pi makes through fetch.
// Node 24.19's bundled undici (7.29) stalls about 1 ms on each reused keep-alive connection
// (nodejs/undici 5493, 5731; fixed in 8.10.1). Installing an Agent from the pinned undici package
// as the global dispatcher, before any request, routes Node's fetch through it.
// Header/body timeouts are off: the gateway's own per-call timeout (AbortSignal) governs, and
// undici's 300 s defaults would cut long silent streams short of it.

import { Agent, getGlobalDispatcher, setGlobalDispatcher } from "undici";

export const DISPATCHER_OPTIONS = Object.freeze({
  keepAliveTimeout: 60000,
  connections: 256,
  headersTimeout: 0,
  bodyTimeout: 0,
});

/** Install the gateway's Agent as the global dispatcher (idempotent) and return it. */
export function installDispatcher(AgentClass = Agent) {
  const current = getGlobalDispatcher();
  if (current instanceof AgentClass && current.gatewayOwned) return current;
  const agent = new AgentClass(DISPATCHER_OPTIONS);
  agent.gatewayOwned = true;
  setGlobalDispatcher(agent);
  return agent;
}
