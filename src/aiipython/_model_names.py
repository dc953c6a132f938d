"""Model names, each rule in one place: the ``pi/`` prefix of PiGatewayLM's names and the
embedded local model's name (provider ``local``, id ``smollm2-135m``; docs/local_model.md).

Standard library only, so every module (and ``import aiipython``) can use it for free.
"""

from __future__ import annotations

from ._errors import ConfigurationError

__all__ = ["PI_PREFIX", "ECHO_PROVIDER", "LOCAL_PROVIDER", "LOCAL_MODEL_ID", "LOCAL_MODEL", "strip_pi_prefix",
           "pi_model_name", "dspy_model_name", "is_local"]

#: What every PiGatewayLM model string starts with: ``pi/<provider>/<id>`` (a LiteLLM-style name).
PI_PREFIX = "pi/"
#: The gateway's echo provider (node_gateway/echo_provider.mjs): always available, never a default
#: model (it only repeats the prompt; a client is pointed at it on purpose, for bring-up and tests).
ECHO_PROVIDER = "echo"
#: pi's provider name of the embedded local model.
LOCAL_PROVIDER = "local"
#: Its model id: pi's id and the llama.cpp server's alias.
LOCAL_MODEL_ID = "smollm2-135m"
#: Its full ``provider/id``, as ``make_lm`` and the gateway take it.
LOCAL_MODEL = f"{LOCAL_PROVIDER}/{LOCAL_MODEL_ID}"


def strip_pi_prefix(name: str) -> str:
    """``pi/<rest>`` -> ``<rest>``; any other name unchanged (no validation)."""
    return name.removeprefix(PI_PREFIX)


def pi_model_name(model: str) -> str:
    """``pi/<provider>/<id>`` or ``<provider>/<id>`` -> ``<provider>/<id>`` (what the gateway takes).

    Raises:
        aiipython.ConfigurationError: the name has no ``<provider>/`` part or no id.
    """
    name = strip_pi_prefix(model)
    provider, _, model_id = name.partition("/")
    if not provider or not model_id:
        raise ConfigurationError(
            f"model {model!r} is not 'pi/<provider>/<id>' (e.g. 'pi/anthropic/claude-sonnet-4-5'); "
            "`aiipython models` lists the names pi knows"
        )
    return name


def dspy_model_name(model: str) -> str:
    """``<provider>/<id>`` (or already ``pi/...``) -> PiGatewayLM's ``pi/<provider>/<id>``.

    Raises:
        aiipython.ConfigurationError: as :func:`pi_model_name`.
    """
    return PI_PREFIX + pi_model_name(model)


def is_local(model: str) -> bool:
    """True for a name of the embedded local model's provider (``local/...``, or its bare id)."""
    name = strip_pi_prefix(model)
    return name.startswith(f"{LOCAL_PROVIDER}/") or name == LOCAL_MODEL_ID
