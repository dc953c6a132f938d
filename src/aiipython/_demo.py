"""``aiipython demo``: a small but real DSPy program through the Pi gateway, then a summary.

It runs ``dspy.Predict`` and ``dspy.ChainOfThought`` over a few questions, streams one answer
token by token, and prints backend, model, tokens, cost and latency. On the embedded 135M model
answers are often wrong and DSPy's output format is sometimes not followed; the demo says so
per question rather than hiding it, and fails only if no text was generated at all.
"""

from __future__ import annotations

import logging
import statistics
import time
from typing import Any

from ._errors import AiipythonError
from ._model_names import strip_pi_prefix

__all__ = ["run_demo"]

QUESTIONS = [
    "What is the capital of France?",
    "How many legs does a cat have?",
    "What color is the sky on a clear day?",
]
COT_QUESTIONS = ["If I have 3 apples and eat one, how many are left?", "What is 5 plus 3?"]
PREDICT_DEMOS = [("What is the capital of Italy?", "Rome"), ("How many days are in a week?", "Seven")]
COT_DEMOS = [("If I have 2 pens and buy 2 more, how many do I have?", "2 plus 2 is 4.", "4")]
STREAM_PROMPT = "Write one short sentence about the sea."


def _cost(entry: dict[str, Any]) -> float:
    """Dollars for one history entry: DSPy's own figure, else the gateway's (``provider_data``)."""
    if isinstance(entry.get("cost"), (int, float)):
        return float(entry["cost"])
    data = getattr(entry.get("response"), "provider_data", None)
    cost = data.get("cost_usd") if isinstance(data, dict) else None
    return float(cost) if isinstance(cost, (int, float)) else 0.0


def run_demo(model: str | None = None, backend: str | None = None) -> dict[str, Any]:
    """Run the demo on stdout; return its summary.

    Args:
        model: as ``make_lm`` (default: ``AIIPYTHON_MODEL``, pi's default, first with credentials,
            else the embedded local model).
        backend: ``auto`` | ``pi`` | ``litellm`` (default ``AIIPYTHON_LM_BACKEND`` or auto).

    Returns:
        ``{"backend", "model", "calls", "prompt_tokens", "completion_tokens", "total_tokens",
        "cost_usd", "latency_s": {"median", "total"}, "format_failures"}``.

    Raises:
        AiipythonError: no model, the gateway failed, or the model generated no text at all.
    """
    import dspy
    from rich.console import Console
    from rich.table import Table

    from ._factory import make_lm
    from ._lm import PiGatewayLM

    console = Console(highlight=False)
    console.rule("[bold]aiipython demo: DSPy through the Pi gateway")
    started = time.perf_counter()
    lm = make_lm(model, backend=backend, temperature=0.0, max_tokens=120, cache=False)
    is_pi = isinstance(lm, PiGatewayLM)
    backend_name = "pi" if is_pi else "litellm"
    console.print(f"backend: [bold]{backend_name}[/]   model: [bold]{lm.model}[/]   "
                  f"(ready in {time.perf_counter() - started:.2f} s)")
    if is_pi:
        from ._gateway import get_gateway

        gw = get_gateway()
        console.print(f"gateway: {gw.url} (Node pid {gw.pid})")

    latencies: list[float] = []
    failures = 0
    texts: list[str] = []
    logging.getLogger("dspy.clients.lm").setLevel(logging.ERROR)  # we report truncation ourselves
    # A few demonstrations: they show a small model DSPy's output format (a large one needs none).
    predict = dspy.Predict("question -> answer")
    predict.demos = [dspy.Example(question=q, answer=a).with_inputs("question") for q, a in PREDICT_DEMOS]
    cot = dspy.ChainOfThought("question -> answer")
    cot.predict.demos = [
        dspy.Example(question=q, reasoning=r, answer=a).with_inputs("question") for q, r, a in COT_DEMOS
    ]
    with dspy.context(lm=lm, track_usage=True):
        for title, program, questions in (
            ("dspy.Predict('question -> answer')", predict, QUESTIONS),
            ("dspy.ChainOfThought('question -> answer')", cot, COT_QUESTIONS),
        ):
            console.print(f"\n[bold]{title}[/]")
            for question in questions:
                t0 = time.perf_counter()
                try:
                    prediction = program(question=question)
                except dspy.utils.exceptions.AdapterParseError:
                    failures += 1
                    latencies.append(time.perf_counter() - t0)
                    raw = lm.history[-1]["outputs"][0] if lm.history else ""
                    raw_text = raw.get("text", "") if isinstance(raw, dict) else str(raw)
                    texts.append(raw_text)
                    console.print(f"  Q: {question}\n  [yellow]the model did not follow DSPy's output format; "
                                  f"it said:[/] {raw_text.strip()[:160]!r}")
                    continue
                latencies.append(time.perf_counter() - t0)
                texts.append(str(prediction.answer))
                console.print(f"  Q: {question}\n  A: [green]{str(prediction.answer).strip()[:200]}[/]")
                if getattr(prediction, "reasoning", None):
                    console.print(f"     reasoning: [dim]{str(prediction.reasoning).strip()[:200]}[/]")

    console.print(f"\n[bold]Streaming[/] ({STREAM_PROMPT!r})")
    console.print("  ", end="")
    t0 = time.perf_counter()
    streamed, stream_usage = _stream_answer(lm, is_pi, console)
    latencies.append(time.perf_counter() - t0)
    texts.append(streamed)
    console.print()

    history = list(lm.history)
    prompt_tokens = sum(int((h.get("usage") or {}).get("prompt_tokens") or 0) for h in history)
    completion_tokens = sum(int((h.get("usage") or {}).get("completion_tokens") or 0) for h in history)
    summary = {
        "backend": backend_name,
        "model": str(lm.model),
        "calls": len(latencies),
        "prompt_tokens": prompt_tokens + stream_usage.get("prompt_tokens", 0),
        "completion_tokens": completion_tokens + stream_usage.get("completion_tokens", 0),
        "cost_usd": sum(_cost(h) for h in history) + stream_usage.get("cost_usd", 0.0),
        "latency_s": {"median": statistics.median(latencies), "total": sum(latencies)},
        "format_failures": failures,
    }
    summary["total_tokens"] = summary["prompt_tokens"] + summary["completion_tokens"]

    table = Table(title="summary", show_header=False)
    table.add_row("backend", backend_name)
    table.add_row("model", summary["model"])
    table.add_row("calls", str(summary["calls"]))
    table.add_row("tokens (prompt / completion / total)",
                  f"{summary['prompt_tokens']} / {summary['completion_tokens']} / {summary['total_tokens']}")
    table.add_row("cost", f"${summary['cost_usd']:.6f}")
    table.add_row("latency per call (median)", f"{summary['latency_s']['median'] * 1000:.0f} ms")
    table.add_row("total time", f"{time.perf_counter() - started:.2f} s")
    if failures:
        table.add_row("DSPy format not followed", f"{failures} of {len(QUESTIONS) + len(COT_QUESTIONS)} (small model)")
    console.print(table)
    if not any(t.strip() for t in texts) or summary["completion_tokens"] <= 0:
        raise AiipythonError("the model generated no text in the demo; see the messages above")
    return summary



def _stream_answer(lm: Any, is_pi: bool, console: Any) -> tuple[str, dict[str, Any]]:
    """Stream one plain chat answer token by token; return its text and the usage of that call
    (on the LiteLLM path the call is not streamed and its usage is in ``lm.history``)."""
    messages = [{"role": "user", "content": STREAM_PROMPT}]
    if not is_pi:
        outputs = lm(messages=messages)
        text = outputs[0] if outputs and isinstance(outputs[0], str) else str(outputs[0].get("text", ""))
        console.print(text, end="")
        return text, {}
    from ._stream_text import stream_text

    answer = stream_text(strip_pi_prefix(str(lm.model)), messages, options={"temperature": 0.0, "max_tokens": 80},
                         on_text=lambda delta: console.print(delta, end="", soft_wrap=True))
    return answer.text, answer.usage
