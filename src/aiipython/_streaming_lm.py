"""StreamingLM: the LiteLLM path, for models the Pi gateway cannot serve and ``tabminion/*``.

It is ``dspy.LM`` pinned to DSPy's LiteLLM engine (``engine="litellm"``), so ``dspy.streamify``
streams its tokens and DSPy keeps cache, retries and history. LiteLLM is imported by DSPy on the
first call, never by ``import aiipython``.
"""

from __future__ import annotations

from typing import Any

import dspy

from ._errors import ConfigurationError
from ._model_names import PI_PREFIX

__all__ = ["StreamingLM"]


class StreamingLM(dspy.LM):
    """A ``dspy.LM`` that always calls the model through LiteLLM (streaming with ``dspy.streamify``)."""

    def __init__(self, model: str, *, engine: str = "litellm", **kwargs: Any) -> None:
        """Create an LM for a LiteLLM model name.

        Args:
            model: LiteLLM's name, e.g. ``openai/gpt-4o`` or ``anthropic/claude-sonnet-4-5``
                (https://docs.litellm.ai/docs/providers); a ``pi/`` prefix is refused.
            engine: only ``"litellm"`` (accepted so ``load_state`` can pass it back).
            **kwargs: ``dspy.LM`` arguments: ``api_key``, ``api_base``, ``temperature``,
                ``max_tokens`` (tokens), ``timeout`` (seconds), ``cache``, ``num_retries``, ...

        Raises:
            aiipython.ConfigurationError: another engine, or a ``pi/`` model name.
        """
        if engine != "litellm":
            raise ConfigurationError(f"StreamingLM always uses engine='litellm', not {engine!r}; "
                                     "use dspy.LM for other engines")
        if model.startswith(PI_PREFIX):
            raise ConfigurationError(f"{model!r} is a Pi gateway name; use PiGatewayLM or make_lm(backend='pi')")
        super().__init__(model, engine="litellm", **kwargs)
