// The one Server-Sent Events writer, shared by /lm/stream and the /v1 streaming routes.
// Frames produced from one upstream chunk leave in one socket write (cork on the first write,
// uncork on the next tick); the first content frame is flushed at once (time to first token);
// a slow reader applies back-pressure (write() returns a promise for 'drain'), and a client that
// went away never hangs the route (the promise also resolves on 'close').

export const SSE_HEADERS = Object.freeze({ "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" });

/** A named SSE frame (the native protocol). JSON.stringify escapes CR/LF: the data is one line. */
export function sseFrame(type, data) {
  return `event: ${type}\ndata: ${JSON.stringify(data)}\n\n`;
}

/** An unnamed `data:` frame (OpenAI chat completions streams). */
export function dataFrame(data) {
  return `data: ${JSON.stringify(data)}\n\n`;
}

/** The end marker of an OpenAI chat completions stream. */
export const DONE_FRAME = "data: [DONE]\n\n";

/** Writes SSE frames to a fastify reply's raw response (after `open()` has hijacked it). */
export class SseWriter {
  constructor(reply) {
    this.reply = reply;
    this.res = reply.raw;
    this.opened = false;
    this.corked = false;
    this.uncork = () => {
      if (!this.corked) return;
      this.corked = false;
      if (!this.res.destroyed) this.res.uncork();
    };
  }

  /** True once the client has gone away (nothing more can be delivered). */
  get closed() {
    return this.res.destroyed;
  }

  /** Take the response over from fastify and send the 200 and the SSE headers (once). */
  open(headers = {}) {
    if (this.opened) return;
    this.opened = true;
    this.reply.hijack();
    this.res.writeHead(200, { ...SSE_HEADERS, ...headers });
  }

  /** Queue a frame; returns null, or a promise to await before writing more (back-pressure). */
  write(chunk) {
    const res = this.res;
    if (res.destroyed) return null;
    if (!this.corked) {
      this.corked = true;
      res.cork();
      process.nextTick(this.uncork);
    }
    return res.write(chunk) ? null : waitDrain(res);
  }

  /** Send what is queued now instead of on the next tick (the first content frame). */
  flush() {
    this.uncork();
  }

  /** Flush and end the response (uncork first: a finished response drops its socket, corked or not). */
  end(chunk = undefined) {
    if (chunk !== undefined) this.write(chunk);
    this.uncork();
    if (!this.res.destroyed) this.res.end();
  }
}

/** Resolve on 'drain' or when the response closes (a closed client must not hang the loop). */
function waitDrain(res) {
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
  });
}
