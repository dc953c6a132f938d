"""Whether LiteLLM can plausibly serve a model name, decided without any network call.

``auto`` falls back to LiteLLM only when this says yes (``_factory.choose_backend``; the typed
API shares the rule): LiteLLM must know the model (its provider from ``litellm.get_llm_provider``
and the model in ``litellm.model_cost``, the cost map it ships) and the provider's credential
variables must be set (``litellm.validate_environment``). LiteLLM is imported on the first call,
never by ``import aiipython``.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field

__all__ = ["LiteLLMVerdict", "litellm_verdict"]


@dataclass(frozen=True)
class LiteLLMVerdict:
    """What :func:`litellm_verdict` found about one model name."""

    #: LiteLLM's provider for the name (``openai``, ``anthropic``, ...); None when it has none.
    provider: str | None
    #: True when LiteLLM's shipped cost map lists the model.
    known: bool
    #: Credential variables LiteLLM needs for it that are not set (empty: all present).
    missing_env: tuple[str, ...] = field(default=())

    @property
    def can_serve(self) -> bool:
        """LiteLLM knows the model and its credentials are present."""
        return self.known and not self.missing_env

    def why_not(self) -> str:
        """Why LiteLLM cannot serve it, one clause (empty when it can)."""
        if not self.known:
            return "LiteLLM does not know it either"
        if self.missing_env:
            return f"LiteLLM knows it but {' and '.join(self.missing_env)} is not set"
        return ""


def litellm_verdict(model: str) -> LiteLLMVerdict:
    """Ask LiteLLM (locally: its provider rules, cost map and env checks) about ``model``.

    Args:
        model: a LiteLLM model name, e.g. ``openai/gpt-4o`` or ``claude-sonnet-4-5``.

    Returns:
        A :class:`LiteLLMVerdict`; never raises for an unknown name (``known`` is then False).
    """
    import litellm  # heavy, only on the fallback path

    quiet, litellm.suppress_debug_info = litellm.suppress_debug_info, True
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # get_llm_provider prints a provider list
            try:
                bare, provider, _, _ = litellm.get_llm_provider(model)
            except Exception:  # LiteLLM raises BadRequestError and others for unknown names
                return LiteLLMVerdict(provider=None, known=False)
            costs = litellm.model_cost
            known = any(name in costs for name in (model, bare, f"{provider}/{bare}"))
            if not known:
                return LiteLLMVerdict(provider=provider, known=False)
            try:
                env = litellm.validate_environment(model)
            except Exception:  # a provider LiteLLM cannot check is taken as unconfigured
                return LiteLLMVerdict(provider=provider, known=True, missing_env=("its API key",))
    finally:
        litellm.suppress_debug_info = quiet
    missing = tuple(str(k) for k in env.get("missing_keys") or ()) if not env.get("keys_in_environment") else ()
    if not env.get("keys_in_environment") and not missing:
        missing = ("its API key",)
    return LiteLLMVerdict(provider=provider, known=True, missing_env=missing)
