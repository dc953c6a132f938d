// fast_fetch.mjs behaves like fetch where provider SDKs depend on it.

import assert from "node:assert/strict";
import http from "node:http";
import { gzipSync } from "node:zlib";
import { after, before, test } from "node:test";
import { fastFetch } from "../fast_fetch.mjs";

let server;
let base;
let lastHeaders;
before(async () => {
  server = http.createServer((req, res) => {
    lastHeaders = req.headers;
    let body = "";
    req.on("data", (d) => {
      body += d;
    });
    req.on("end", () => {
      if (req.url === "/gzip") {
        res.writeHead(200, { "content-type": "application/json", "content-encoding": "gzip" });
        res.end(gzipSync(JSON.stringify({ ok: true })));
      } else if (req.url === "/redirect") {
        res.writeHead(307, { location: "/echo" });
        res.end();
      } else if (req.url === "/hang") {
        res.writeHead(200, { "content-type": "text/event-stream" });
        res.write("data: 1\n\n");
      } else if (req.url === "/empty") {
        res.writeHead(204);
        res.end();
      } else {
        res.writeHead(201, { "content-type": "application/json", "x-multi": ["a", "b"] });
        res.end(JSON.stringify({ method: req.method, body }));
      }
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${server.address().port}`;
});
after(() => {
  server.closeAllConnections();
  server.close();
});

test("a JSON POST: status, headers, body", async () => {
  const res = await fastFetch(`${base}/echo`, { method: "POST", headers: { "Content-Type": "application/json", "X-Key": "v" }, body: '{"a":1}' });
  assert.equal(res.status, 201);
  assert.equal(res.ok, true);
  assert.equal(res.headers.get("x-multi"), "a, b");
  assert.deepEqual(await res.json(), { method: "POST", body: '{"a":1}' });
  assert.equal(lastHeaders["x-key"], "v");
  const res2 = await fastFetch(new URL(`${base}/echo`), { method: "POST", headers: new Headers({ a: "1" }), body: "x" });
  assert.equal((await res2.json()).body, "x");
});

test("compressed responses are decoded", async () => {
  const res = await fastFetch(`${base}/gzip`);
  assert.deepEqual(await res.json(), { ok: true });
  assert.equal(res.headers.get("content-encoding"), null);
});

test("redirects and non-string bodies fall back to fetch", async () => {
  const res = await fastFetch(`${base}/redirect`, { method: "POST", body: "r" });
  assert.equal(res.status, 201);
  assert.equal((await res.json()).body, "r");
  const stream = new Blob(["blob body"]);
  const res2 = await fastFetch(`${base}/echo`, { method: "POST", body: stream });
  assert.equal((await res2.json()).body, "blob body");
});

test("204 has no body", async () => {
  const res = await fastFetch(`${base}/empty`);
  assert.equal(res.status, 204);
  assert.equal(res.body, null);
});

test("abort: before headers rejects with an AbortError; during the body errors the stream", async () => {
  const early = new AbortController();
  early.abort();
  await assert.rejects(fastFetch(`${base}/echo`, { signal: early.signal }), (err) => err.name === "AbortError");
  const late = new AbortController();
  const res = await fastFetch(`${base}/hang`, { signal: late.signal });
  const reader = res.body.getReader();
  const first = await reader.read();
  assert.match(new TextDecoder().decode(first.value), /data: 1/);
  late.abort();
  await assert.rejects(reader.read());
});
