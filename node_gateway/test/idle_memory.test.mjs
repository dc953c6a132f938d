// idle_memory.mjs: one memory-reducing GC once the gateway is idle after start-up.
import assert from "node:assert/strict";
import { test } from "node:test";
import { releaseStartupMemory } from "../idle_memory.mjs";

test("runs once when nothing moved for idleMs and nothing is in flight, and reports the RSS", async () => {
  let calls = 0;
  let reads = 0;
  let busyChecks = 0;
  const done = await new Promise((resolve) => {
    releaseStartupMemory({
      activity: () => Math.min(++reads, 3), // requests arrive during the first two waits
      busy: () => ++busyChecks === 1, // then one is in flight at the first quiet look
      idleMs: 5,
      onDone: (fields) => {
        calls++;
        resolve(fields);
      },
    });
  });
  assert.equal(calls, 1);
  assert.ok(reads >= 4 && busyChecks === 2, "it waited while requests arrived and while one was in flight");
  assert.ok(done.rss_mb > 0 && Number.isInteger(done.ms));
});

test("cancelled before it ran, it never runs", async () => {
  let ran = false;
  let looked;
  const seen = new Promise((resolve) => (looked = resolve));
  const cancel = releaseStartupMemory({
    activity: () => 0,
    busy: () => {
      looked();
      return true; // always busy: it keeps rescheduling until cancelled
    },
    idleMs: 1,
    onDone: () => (ran = true),
  });
  await seen;
  cancel();
  assert.equal(ran, false);
});
