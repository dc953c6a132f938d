// A lean `fetch` for pi's provider calls: undici.request() (one socket write for headers and a
// string body, no WHATWG request-body stream) wrapped into a standard Response whose body is a
// thin web stream over undici's Node stream.
// Measured on the openai-completions path it cuts the gateway's CPU per call by about a third
// compared with Node's fetch. It covers what provider SDKs send (a string or bytes body);
// anything else (streams, FormData, redirects) is handed to the global fetch unchanged.

import { createBrotliDecompress, createGunzip, createInflate } from "node:zlib";
import { request } from "undici";

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const NO_BODY = new Set([101, 204, 205, 304]);
const DECODERS = { gzip: createGunzip, "x-gzip": createGunzip, deflate: createInflate, br: createBrotliDecompress };

function headerRecord(src) {
  const out = {};
  if (!src) return out;
  if (Array.isArray(src)) {
    for (const [k, v] of src) out[k.toLowerCase()] = v;
  } else if (typeof src.forEach === "function") {
    src.forEach((v, k) => {
      out[k] = v;
    });
  } else {
    for (const k of Object.keys(src)) {
      const v = src[k];
      if (v !== undefined && v !== null) out[k.toLowerCase()] = String(v);
    }
  }
  return out;
}

/** fetch(input, init) with the semantics provider SDKs rely on; falls back to globalThis.fetch. */
export async function fastFetch(input, init = {}) {
  const body = init.body;
  const simpleBody = body === undefined || body === null || typeof body === "string" || body instanceof Uint8Array;
  if (!simpleBody || (typeof input !== "string" && !(input instanceof URL)) || init.redirect === "manual") {
    return globalThis.fetch(input, init);
  }
  const url = typeof input === "string" ? input : input.href;
  const method = (init.method ?? "GET").toUpperCase();
  const headers = headerRecord(init.headers);
  headers["accept-encoding"] = "gzip, deflate, br"; // what fetch sends; decoded below
  const res = await request(url, { method, headers, body: body ?? undefined, signal: init.signal ?? undefined });
  if (REDIRECTS.has(res.statusCode)) {
    res.body.resume();
    return globalThis.fetch(input, init); // rare for provider APIs: let fetch follow it
  }
  const out = new Headers();
  for (const name of Object.keys(res.headers)) {
    const v = res.headers[name];
    if (Array.isArray(v)) for (const one of v) out.append(name, one);
    else if (v !== undefined) out.append(name, v);
  }
  let stream = res.body;
  if (NO_BODY.has(res.statusCode) || method === "HEAD") {
    stream.resume();
    return new Response(null, { status: res.statusCode, headers: out });
  }
  const encoding = (out.get("content-encoding") ?? "").trim().toLowerCase();
  if (encoding && encoding !== "identity") {
    const decoder = DECODERS[encoding];
    if (!decoder) throw new TypeError(`unsupported content-encoding: ${encoding}`);
    const decoded = decoder();
    stream.on("error", (err) => decoded.destroy(err));
    stream = stream.pipe(decoded);
    out.delete("content-encoding");
    out.delete("content-length");
  }
  return new Response(toWebStream(stream), { status: res.statusCode, headers: out });
}

/** A Node Readable as a web ReadableStream: less machinery than Readable.toWeb, same backpressure. */
function toWebStream(node) {
  let finished = false;
  return new ReadableStream({
    start(controller) {
      node.on("data", (chunk) => {
        controller.enqueue(chunk);
        if (controller.desiredSize <= 0) node.pause();
      });
      node.once("end", () => {
        if (finished) return;
        finished = true;
        controller.close();
      });
      node.once("error", (err) => {
        if (finished) return;
        finished = true;
        controller.error(err);
      });
      node.once("close", () => {
        if (finished) return; // closed without end or error: the connection went away
        finished = true;
        controller.error(new TypeError("terminated"));
      });
    },
    pull() {
      node.resume();
    },
    cancel(reason) {
      finished = true;
      node.destroy(reason instanceof Error ? reason : undefined);
    },
  }, { highWaterMark: 16 }); // chunks buffered before the Node stream is paused
}
