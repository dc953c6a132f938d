#!/usr/bin/env python
"""Offline DSPy parse rate on the embedded model (issue 15; docs/benchmarks.md "Offline DSPy").

Zero-shot ``dspy.Predict`` and ``dspy.ChainOfThought`` on ten signatures with different output
field names and types (str, int, float, bool, list[str], Literal, two outputs), five inputs each,
on ``local/smollm2-135m`` with nothing but ``dspy.configure(lm=aiipython.make_lm())`` (the default
adapter, default temperature, DSPy's cache off). A call counts as parsed when the module returns a
prediction with every output field of its type; answers may be wrong (a 135M model).

    .venv/bin/python scripts/bench_offline.py [--per-signature N] [--label before|after] [--no-write]

Run it under ``flock /work/helpers/bench.lock`` on a shared machine. It runs in a fresh pi agent
dir (no credentials) with the local model on one thread, and writes ``docs/benchmarks_offline.json``
(keyed by ``--label``) and the "Offline DSPy" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parent.parent
JSON_OUT = ROOT / "docs" / "benchmarks_offline.json"
MD = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- offline-dspy:start -->", "<!-- offline-dspy:end -->"
TARGET = 0.98


def _signatures() -> list[tuple[str, Any, list[dict[str, Any]]]]:
    import dspy

    class Sentiment(dspy.Signature):
        """Classify the sentiment of the review."""

        review: str = dspy.InputField()
        sentiment: Literal["positive", "negative", "neutral"] = dspy.OutputField()

    class Summarize(dspy.Signature):
        """Give the document a short title and a one-sentence summary."""

        document: str = dspy.InputField()
        title: str = dspy.OutputField()
        summary: str = dspy.OutputField()

    class Animal(dspy.Signature):
        """Describe the animal."""

        animal: str = dspy.InputField()
        habitat: str = dspy.OutputField(desc="where it lives")
        legs: int = dspy.OutputField(desc="number of legs")

    q = ["What is the capital of France?", "Who wrote Hamlet?", "What color is the sky?",
         "What is the largest planet?", "What do bees make?"]
    return [
        ("question -> answer", "question -> answer", [{"question": x} for x in q]),
        ("question -> answer: int", "question -> answer: int",
         [{"question": x} for x in ["What is 2 + 3?", "How many days are in a week?", "What is 10 minus 4?",
                                    "How many legs does a spider have?", "What is 6 times 7?"]]),
        ("statement -> is_true: bool", "statement -> is_true: bool",
         [{"statement": x} for x in ["The sun is hot.", "Fish can fly to the moon.", "Water is wet.",
                                     "Two plus two is five.", "Paris is in France."]]),
        ("topic -> keywords: list[str]", "topic -> keywords: list[str]",
         [{"topic": x} for x in ["cooking", "space travel", "gardening", "football", "music"]]),
        ("Sentiment (Literal)", Sentiment,
         [{"review": x} for x in ["I loved it!", "Terrible, never again.", "It was fine.",
                                  "Best purchase of my life.", "The box was brown."]]),
        ("context, question -> answer", "context, question -> answer",
         [{"context": c, "question": x} for c, x in [
             ("Tom has a red bike.", "What color is Tom's bike?"),
             ("The shop opens at 9.", "When does the shop open?"),
             ("Anna lives in Oslo.", "Where does Anna live?"),
             ("The cat is named Milo.", "What is the cat's name?"),
             ("It rained all day on Monday.", "When did it rain?")]]),
        ("Summarize (title, summary)", Summarize,
         [{"document": x} for x in [
             "The city council voted to build a new park near the river next spring.",
             "Scientists found a new species of frog in the rainforest.",
             "The local team won the championship after a close final game.",
             "A new bakery opened downtown and sells fresh bread every morning.",
             "The library will extend its opening hours during exam season."]]),
        ("Animal (str, int)", Animal, [{"animal": x} for x in ["dog", "eagle", "snake", "spider", "horse"]]),
        ("sentence -> language, word_count: int", "sentence -> language, word_count: int",
         [{"sentence": x} for x in ["Hello world", "Bonjour tout le monde", "Hola amigo",
                                    "Guten Morgen", "Good night everyone"]]),
        ("claim -> verdict: bool, confidence: float", "claim -> verdict: bool, confidence: float",
         [{"claim": x} for x in ["Ice is cold.", "Cats bark.", "The earth is round.",
                                 "Snow is black.", "Birds have feathers."]]),
    ]


def _typed(value: Any, annotation: Any) -> bool:
    from typing import get_args, get_origin

    origin = get_origin(annotation)
    if annotation is str:
        return isinstance(value, str)
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if origin is list:
        return isinstance(value, list) and all(_typed(v, get_args(annotation)[0]) for v in value)
    if origin is Literal:
        return value in get_args(annotation)
    return value is not None


def run(per_signature: int, adapter: str) -> dict[str, Any]:
    import dspy

    import aiipython

    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)
    lm = aiipython.make_lm()
    assert lm.model == "pi/local/smollm2-135m", f"expected the local model, got {lm.model}"
    dspy.configure(lm=lm, adapter=dspy.JSONAdapter() if adapter == "json" else None)
    lm("Hi", max_tokens=4)  # start the local model server outside the timings
    label = "JSONAdapter" if adapter == "json" else "default (ChatAdapter)"
    out: dict[str, Any] = {"model": lm.model, "adapter": label, "modules": {}}
    for kind, module_cls in (("Predict", dspy.Predict), ("ChainOfThought", dspy.ChainOfThought)):
        rows = []
        for label, signature, inputs in _signatures():
            module = module_cls(signature)
            sig = module.predict.signature if kind == "ChainOfThought" else module.signature
            for example in inputs[:per_signature]:
                before = len(lm.history)
                t0 = time.perf_counter()
                error = None
                ok = False
                try:
                    pred = module(**example)
                    ok = all(_typed(getattr(pred, name, None), field.annotation)
                             for name, field in sig.output_fields.items())
                    if not ok:
                        error = "wrong type: " + repr({n: getattr(pred, n, None) for n in sig.output_fields})[:200]
                except Exception as exc:  # every failure is a data point
                    error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                rows.append({"signature": label, "ok": ok, "lm_calls": len(lm.history) - before,
                             "seconds": round(time.perf_counter() - t0, 3), "error": error})
                print(f"{kind:15s} {label:42s} {'ok ' if ok else 'FAIL'} calls={rows[-1]['lm_calls']} "
                      f"{rows[-1]['seconds']:.2f}s {error or ''}", file=sys.stderr, flush=True)
        parsed = sum(r["ok"] for r in rows)
        out["modules"][kind] = {
            "calls": len(rows), "parsed": parsed, "rate": parsed / len(rows),
            "lm_calls": sum(r["lm_calls"] for r in rows),
            "seconds": round(sum(r["seconds"] for r in rows), 1), "rows": rows,
        }
    return out


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def render(results: dict[str, Any]) -> str:
    lines = [START, "## Offline DSPy: parse rate on the embedded model", "",
             "Generated by `scripts/bench_offline.py` (not by `scripts/bench`); raw rows: "
             "[`benchmarks_offline.json`](benchmarks_offline.json). Zero-shot `dspy.Predict` and "
             "`dspy.ChainOfThought` on `local/smollm2-135m` (SmolLM2-135M Q4_1, llama.cpp, one thread) with "
             "only `dspy.configure(lm=aiipython.make_lm())`: default adapter, default temperature, cache off, "
             "ten signatures (str, int, float, bool, list[str], Literal, two output fields), five inputs each. "
             "Parsed = the module returned every output field with its type; the answers themselves are often "
             f"wrong (135M parameters). Target: ≥ {TARGET:.0%} parsed.", "",
             "| run | adapter | module | parsed | rate | LM calls | seconds | target |",
             "|---|---|---|---|---|---|---|---|"]
    for label, run_ in results.items():
        for kind, m in run_["modules"].items():
            met = "**met**" if m["rate"] >= TARGET else "**missed**"
            adapter = run_.get("adapter", "default (ChatAdapter)")
            lines.append(f"| {label} (`{run_['commit']}`, {run_['date']}) | {adapter} | {kind} | "
                         f"{m['parsed']}/{m['calls']} | "
                         f"{m['rate']:.0%} | {m['lm_calls']} | {m['seconds']} | {met} |")
    lines += ["", "`LM calls` counts DSPy's calls to the model, including the JSON retry DSPy's ChatAdapter "
              "makes after a reply it cannot parse.", END]
    return "\n".join(lines)


def write(label: str, result: dict[str, Any]) -> None:
    results = json.loads(JSON_OUT.read_text()) if JSON_OUT.exists() else {}
    results[label] = result
    JSON_OUT.write_text(json.dumps(results, indent=1) + "\n")
    text = MD.read_text()
    section = render(results)
    if START in text and END in text:
        text = text[: text.index(START)] + section + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    MD.write_text(text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-signature", type=int, default=5, help="inputs per signature (1-5, default 5)")
    ap.add_argument("--label", default="after", help="the run's name in the report (default: after)")
    ap.add_argument("--adapter", choices=("default", "json"), default="default",
                    help="default: only dspy.configure(lm=make_lm()); json: also adapter=dspy.JSONAdapter()")
    ap.add_argument("--no-write", action="store_true", help="print only; do not touch docs/")
    args = ap.parse_args()
    home = tempfile.mkdtemp(prefix="bench-offline-")
    for key in list(os.environ):
        if key.endswith("_API_KEY") or key.startswith(("AIIPYTHON_", "PI_")):
            del os.environ[key]
    os.environ.update({"PI_CODING_AGENT_DIR": os.path.join(home, "agent"), "AIIPYTHON_LOCAL_MODEL": "on",
                       "DSPY_CACHEDIR": os.path.join(home, "dspy"), "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
    result = run(args.per_signature, args.adapter)
    result.update({"commit": _commit(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                   "machine": f"{platform.machine()}, {os.cpu_count()} cores"})
    for kind, m in result["modules"].items():
        print(f"{kind}: {m['parsed']}/{m['calls']} parsed ({m['rate']:.1%}), {m['lm_calls']} LM calls, "
              f"{m['seconds']} s")
    if not args.no_write:
        write(args.label, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
