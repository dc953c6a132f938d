// GET /health: liveness and versions (docs/protocol.md).

export default async function healthRoutes(app, { adapter, startedAt, version, admission }) {
  app.get("/health", async () => ({
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
