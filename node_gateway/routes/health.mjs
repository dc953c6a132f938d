// GET /health: liveness and versions (docs/protocol.md).

const number = { type: "number" };
const integer = { type: "integer" };
const string = { type: "string" };

/** The reply, serialised (and checked: a missing or mistyped field is a 500) by fastify. */
export const healthSchema = {
  type: "object",
  required: ["ok", "pid", "uptime_s", "version", "pi_version", "node_version", "memory", "admission"],
  additionalProperties: true,
  properties: {
    ok: { type: "boolean" },
    pid: integer,
    uptime_s: number,
    version: string,
    pi_version: string,
    node_version: string,
    memory: {
      type: "object",
      required: ["rss_mb", "heap_used_mb", "heap_total_mb"],
      properties: { rss_mb: number, heap_used_mb: number, heap_total_mb: number },
    },
    admission: {
      type: "object",
      required: ["inflight", "queued", "limit", "queue_limit", "shed"],
      properties: { inflight: integer, queued: integer, limit: integer, queue_limit: integer, shed: integer },
    },
  },
};

export default async function healthRoutes(app, { adapter, startedAt, version, admission }) {
  app.get("/health", { schema: { response: { 200: healthSchema } } }, async () => ({
    ok: true,
    pid: process.pid,
    uptime_s: Math.round((Date.now() - startedAt) / 100) / 10,
    version,
    pi_version: adapter.piVersion,
    node_version: process.version,
    memory: memoryMb(),
    admission: admission.stats(),
  }));
}

function memoryMb() {
  const m = process.memoryUsage();
  const mb = (n) => Math.round(n / 104857.6) / 10;
  return { rss_mb: mb(m.rss), heap_used_mb: mb(m.heapUsed), heap_total_mb: mb(m.heapTotal) };
}
