"""engines/: the rollout engine protocol (`base.RolloutEngine`) and the registry of engines.

`rollout.engine` takes a registered name (`transformers`, `vllm`, or `auto`: vLLM when a GPU is
present, transformers `generate` otherwise) or an import path `pkg.mod:Class` naming a class that
follows the protocol. `check_engine_name` validates a name without importing any engine (config
validation calls it before any actor starts); `engine_class` imports and returns the class (the
rollout worker calls it). Engine-specific options live in `rollout.<engine name>` (registered
engines) or `rollout.engine_options` (an engine given by import path) and reach the constructor as
keyword arguments.

May import: torch and the engine's own library (transformers, vllm), lazily. Never Ray, workers or
driver.
"""

from __future__ import annotations

from rltrain.registry import check_name, load_class

# registered name -> "module:Class" (imported only when used: vLLM is heavy)
ENGINES: dict[str, str] = {
    "transformers": "rltrain.engines.transformers_engine:TransformersEngine",
    "vllm": "rltrain.engines.vllm_engine:VLLMEngine",
}
ALIASES = ("auto",)


def allowed_engines() -> str:
    return ", ".join([*ALIASES, *sorted(ENGINES)])


def check_engine_name(name: str) -> None:
    """Raise ValueError listing the allowed engines unless `name` is registered, `auto`, or looks
    like an import path (`pkg.mod:Class`, imported and checked by `engine_class`)."""
    if name not in ALIASES:
        check_name(name, ENGINES, "engine", allowed_engines())


def resolve_engine_name(name: str, cuda: bool) -> str:
    """`auto` -> `vllm` when a GPU is present, else `transformers`; other names unchanged."""
    if name == "auto":
        return "vllm" if cuda else "transformers"
    return name


def engine_class(name: str) -> type:
    """The engine class for a registered name or a `pkg.mod:Class` import path."""
    check_engine_name(name)
    return load_class(name, ENGINES, "rollout.engine", ("generate", "load_weights", "finish_weight_update"),
                      "engine protocol (rltrain.engines.base.RolloutEngine)")


def check_resumable(name: str) -> None:
    """Partial rollouts need an engine that resumes a sample from its token ids (`continue_sequences`)
    exactly; an engine class says it cannot with `resumes_partial = False`."""
    import torch

    cls = engine_class(resolve_engine_name(name, torch.cuda.is_available()))
    if not getattr(cls, "resumes_partial", False):
        raise ValueError(f"rollout.partial_tokens is set but engine {name!r} ({cls.__name__}) cannot pause and "
                         "resume a sample (resumes_partial is not True); set rollout.partial_tokens: 0")
