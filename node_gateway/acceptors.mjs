// Extra listening sockets on the gateway's port (SO_REUSEPORT), for fair service of new
// connections under load (docs/architecture.md "Accepting connections").
//
// Node 24's libuv accepts ONE connection per listening socket per event-loop turn. On a busy
// gateway a turn lasts as long as the work of every request in flight (tens of ms at
// saturation), so a burst of new connections (a client opening its pool, wrk's 128) waits in the
// kernel's accept queue for seconds while keep-alive connections are served: measured here, 128
// connections took 3.1 s to accept with 20 ms turns, 0.28 s with 16 sockets, 0.16 s with 32.
// With ACCEPTORS sockets in one SO_REUSEPORT group the kernel spreads new connections over
// them, so a turn accepts up to ACCEPTORS. Each extra socket hands its connection to the one
// HTTP server (`server.emit("connection")`): routing, keep-alive and shutdown are unchanged.
//
// SO_REUSEPORT lets another socket of the same user bind the port too. On a fixed port the
// gateway first binds it plainly (no SO_REUSEPORT) and releases it: if another server holds the
// port, that fails with EADDRINUSE as before, and a later server (ours or not) cannot bind a port
// held by our group without SO_REUSEPORT itself. Cluster workers do not use this: their primary
// accepts (an idle loop) and hands connections out.

import net from "node:net";

/** Listening sockets per gateway process (the first is fastify's own). */
export const ACCEPTORS = 16;

/** Resolve once `server` listens, reject on its error (EADDRINUSE...). */
function listen(server, options) {
  return new Promise((resolve, reject) => {
    const onError = (err) => {
      server.off("listening", onListening);
      reject(err);
    };
    const onListening = () => {
      server.off("error", onError);
      resolve();
    };
    server.once("error", onError);
    server.once("listening", onListening);
    server.listen(options);
  });
}

/** Fail with EADDRINUSE when something already listens on host:port (a plain, exclusive bind). */
async function checkPortFree(host, port) {
  const probe = net.createServer();
  await listen(probe, { host, port, exclusive: true });
  await new Promise((resolve) => probe.close(resolve));
}

/**
 * `app.listen({host, port})` with `acceptors - 1` more listening sockets on the same port.
 * Returns {address, close()}: `close()` stops the extra sockets accepting (call it at shutdown,
 * before the app closes; fastify closes its own).
 */
export async function listenWithAcceptors(app, { host, port, acceptors = ACCEPTORS }) {
  if (acceptors <= 1) return { address: await app.listen({ host, port }), close() {} };
  if (port !== 0) await checkPortFree(host, port);
  const address = await app.listen({ host, port, reusePort: true });
  const bound = app.server.address().port;
  const extras = [];
  const close = () => {
    for (const server of extras) server.close();
    extras.length = 0;
  };
  try {
    for (let i = 1; i < acceptors; i++) {
      const server = net.createServer({ noDelay: true }, (socket) => app.server.emit("connection", socket));
      await listen(server, { host, port: bound, reusePort: true });
      extras.push(server);
    }
  } catch (err) {
    close();
    await app.close();
    throw err;
  }
  return { address, close };
}
