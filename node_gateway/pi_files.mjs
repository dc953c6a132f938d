// The user's pi files (auth.json, models.json) as the gateway sees them: whether each one parses,
// and if not, an error naming the file with position and reason only, never its content (V8's
// JSON errors quote the text around the fault, which may be a key). No pi import here.
// `GuardedCredentials` keeps a broken auth.json from switching off every credential: while it
// does not parse, pi sees no stored credentials (env keys keep working) and writes are refused.

import { readFileSync, statSync } from "node:fs";

/**
 * Why `text` is not JSON, as "<reason> at line L column C", without quoting any of it.
 * V8's message gives the reason (its excerpt and quoted tokens are dropped); the position is
 * V8's when it says one, else the shortest prefix that already fails (binary search).
 */
export function describeJsonError(text, err) {
  const message = String(err?.message ?? err);
  let reason = message.split(/, "|\s+in JSON|\s+at position/)[0].trim();
  if (!reason || reason.startsWith("Unexpected token")) reason = "unexpected character"; // V8 quotes the character
  const at = /position (\d+)/.exec(message);
  let position = at ? Number(at[1]) : failingPrefix(text);
  if (position === null) return `${reason}`;
  position = Math.min(position, text.length);
  const before = text.slice(0, position);
  const line = before.split("\n").length;
  const column = position - before.lastIndexOf("\n");
  return `${reason} at line ${line} column ${column}`;
}

function failingPrefix(text) {
  const fails = (n) => {
    try {
      JSON.parse(text.slice(0, n));
      return false;
    } catch (err) {
      return !/Unexpected end of JSON input/.test(String(err?.message));
    }
  };
  if (!fails(text.length)) return text.length; // only the end is missing
  let lo = 0;
  let hi = text.length; // fails(hi) holds
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (fails(mid)) hi = mid;
    else lo = mid + 1;
  }
  return Math.max(0, lo - 1);
}

/**
 * `text` with `//` line comments and trailing commas blanked out, as pi 1.6 reads models.json
 * (pi-coding-agent's utils/json.js stripJsonComments, same patterns), but replaced by spaces so
 * an error's line and column still point into the user's file.
 */
export function blankJsonComments(text) {
  const blank = (m) => m.replace(/[^\n]/g, " ");
  return text
    .replace(/"(?:\\.|[^"\\])*"|\/\/[^\n]*/g, (m) => (m[0] === '"' ? m : blank(m)))
    .replace(/"(?:\\.|[^"\\])*"|,(\s*[}\]])/g, (m, tail) => (tail !== undefined ? ` ${tail}` : m));
}

/**
 * One JSON file of the user's, re-checked when its mtime or size changes. `jsonc`: the file may
 * hold `//` comments and trailing commas (pi reads models.json that way).
 */
export class JsonFile {
  #stamp = undefined;
  #error = null;

  constructor(path, { jsonc = false } = {}) {
    this.path = path;
    this.jsonc = jsonc;
  }

  /** null when the file is missing or parses, else "<path> is not valid JSON: <reason> at ...". */
  error() {
    const st = statSync(this.path, { throwIfNoEntry: false });
    const stamp = st ? `${st.mtimeMs}:${st.size}` : "none";
    if (stamp === this.#stamp) return this.#error;
    this.#stamp = stamp;
    this.#error = null;
    if (!st) return null;
    let text;
    try {
      text = readFileSync(this.path, "utf8");
    } catch (err) {
      this.#error = `${this.path} cannot be read (${err.code ?? "error"})`;
      return this.#error;
    }
    if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    if (text.trim() === "") return null; // pi treats an empty file as empty
    if (this.jsonc) text = blankJsonComments(text);
    try {
      JSON.parse(text);
    } catch (err) {
      this.#error = `${this.path} is not valid JSON: ${describeJsonError(text, err)}`;
    }
    return this.#error;
  }
}

/**
 * A pi CredentialStore (read, list, modify, delete) over pi's own auth.json store that treats a
 * broken auth.json as empty for reads, so env keys and models.json keys keep working, and
 * refuses writes (a login would overwrite the user's file) until it is fixed.
 */
export class GuardedCredentials {
  #broken = null; // whether the content pi last parsed was broken (null: pi's parse is not observable)

  constructor(inner, authFile) {
    this.inner = inner;
    this.authFile = authFile;
    // pi's AuthStorage stats auth.json on every read and re-parses it only when it changed; seeing
    // that parse tells whether the file is broken without a second stat per call of our own.
    if (typeof inner.parseStorageData === "function") {
      const parse = inner.parseStorageData.bind(inner);
      inner.parseStorageData = (content) => {
        try {
          const data = parse(content);
          this.#broken = false;
          return data;
        } catch (err) {
          this.#broken = true;
          throw err;
        }
      };
      this.#broken = authFile.error() !== null; // pi parsed it once already, before this wrapper
    }
  }

  #refuse() {
    const error = this.authFile.error();
    if (error) throw new Error(`${error}; fix or delete it, then try again`);
  }

  /** pi's answer, or `empty` while auth.json does not parse (pi would keep its last good snapshot). */
  async #guarded(call, empty) {
    if (this.#broken === null) return this.authFile.error() ? empty : call();
    let result;
    try {
      result = await call();
    } catch (err) {
      if (this.#broken) return empty;
      throw err;
    }
    return this.#broken ? empty : result;
  }

  async read(providerId, options) {
    return this.#guarded(() => this.inner.read(providerId, options), undefined);
  }

  async list(options) {
    return this.#guarded(() => this.inner.list(options), []);
  }

  async modify(providerId, fn, options) {
    this.#refuse();
    return this.inner.modify(providerId, fn, options);
  }

  async delete(providerId, options) {
    this.#refuse();
    return this.inner.delete(providerId, options);
  }
}
