// acceptors.mjs: the gateway's port served by several listening sockets (SO_REUSEPORT) that all
// hand connections to the one fastify server; a fixed port already in use is still EADDRINUSE,
// and a second gateway cannot join a port our group holds. The real server listens this way.

import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import net from "node:net";
import { test } from "node:test";
import Fastify from "fastify";
import { Agent, request } from "undici";
import { ACCEPTORS, listenWithAcceptors } from "../acceptors.mjs";
import { TOKEN, makeAgentDir, spawnGateway } from "./helpers.mjs";

/** Listening TCP sockets on `port` (Linux /proc/net/tcp; null elsewhere). */
function listeners(port) {
  if (!existsSync("/proc/net/tcp")) return null;
  const hex = port.toString(16).toUpperCase().padStart(4, "0");
  return readFileSync("/proc/net/tcp", "utf8")
    .split("\n")
    .slice(1)
    .filter((line) => {
      const [, local, , state] = line.trim().split(/\s+/);
      return local?.endsWith(`:${hex}`) && state === "0A";
    }).length;
}

function tinyApp() {
  const app = Fastify();
  let served = 0;
  app.get("/", async (req) => ({ served: ++served, remote: req.socket.remotePort }));
  return app;
}

test("every listening socket hands its connections to the one server; close() stops them", async () => {
  const app = tinyApp();
  const { address, close } = await listenWithAcceptors(app, { host: "127.0.0.1", port: 0, acceptors: 4 });
  // 64 separate connections: the kernel spreads them over the four sockets; all are answered.
  const agent = new Agent({ connections: 64, pipelining: 1 });
  const replies = await Promise.all(
    Array.from({ length: 64 }, () => request(address, { dispatcher: agent }).then((r) => r.body.json())),
  );
  assert.equal(replies.length, 64);
  assert.equal(new Set(replies.map((r) => r.served)).size, 64, "one server counted every request");
  await agent.close();
  close();
  await app.close();
  await assert.rejects(request(address), /ECONNREFUSED/, "nothing listens after close");
});

test("a fixed port that is taken is EADDRINUSE, and a port our group holds cannot be joined", async () => {
  const other = net.createServer();
  await new Promise((resolve) => other.listen({ host: "127.0.0.1", port: 0 }, resolve));
  const taken = other.address().port;
  await assert.rejects(listenWithAcceptors(tinyApp(), { host: "127.0.0.1", port: taken, acceptors: 4 }), { code: "EADDRINUSE" });
  other.close();

  const first = tinyApp();
  const held = await listenWithAcceptors(first, { host: "127.0.0.1", port: 0, acceptors: 4 });
  const port = Number(new URL(held.address).port);
  await assert.rejects(listenWithAcceptors(tinyApp(), { host: "127.0.0.1", port, acceptors: 4 }), { code: "EADDRINUSE" });
  held.close();
  await first.close();
});

test("the gateway listens with ACCEPTORS sockets on its port and answers on each", { timeout: 60000 }, async () => {
  const gw = await spawnGateway({ env: { AIIPYTHON_GATEWAY_TOKEN: TOKEN, PI_CODING_AGENT_DIR: makeAgentDir() } });
  try {
    const count = listeners(Number(new URL(gw.ready.url).port));
    if (count !== null) assert.equal(count, ACCEPTORS);
    const agent = new Agent({ connections: ACCEPTORS * 2, pipelining: 1 });
    const headers = { authorization: `Bearer ${TOKEN}` };
    const statuses = await Promise.all(
      Array.from({ length: ACCEPTORS * 4 }, () => request(`${gw.ready.url}/health`, { dispatcher: agent, headers }).then(async (r) => (await r.body.json(), r.statusCode))),
    );
    assert.ok(statuses.every((s) => s === 200));
    await agent.close();
  } finally {
    gw.child.stdin.end();
    const { code } = await gw.exited;
    assert.equal(code, 0, "stdin EOF still ends the gateway cleanly (the extra sockets closed too)");
  }
});
