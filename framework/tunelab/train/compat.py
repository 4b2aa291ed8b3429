"""Which approaches can run: model × method × peft × eval, checked before any work.

Every component declares what it can do (``ModelLoader.tasks`` / ``quantizable``,
``Method.task`` / ``alternative_tasks`` / ``produces`` / ``unsupported_peft``,
``PeftMethod.tasks``, ``Evaluator.scores``); :func:`check_approach` refuses a
combination that cannot work, says why, and lists the options that would.
Plugin components take part by setting the same class attributes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tunelab.config import ConfigError, RunConfig
from tunelab.plugins import Registry


@dataclass(frozen=True)
class Approach:
    """A checked combination: the task the model is loaded for and what the run produces."""

    task: str
    produces: str


def method_tasks(method_cls: type) -> tuple[str, ...]:
    """The tasks an objective can train, preferred first."""
    return (method_cls.task, *getattr(method_cls, "alternative_tasks", ()))


def produces(method_cls: type, task: str) -> str:
    return getattr(method_cls, "produces", None) or task


def peft_refusal(method_cls: type, peft_name: str) -> str | None:
    """Why ``method`` cannot train with ``peft=peft_name`` (None: it can)."""
    unsupported = getattr(method_cls, "unsupported_peft", {}) or {}
    if peft_name in unsupported:
        return unsupported[peft_name]
    if "*" in unsupported and peft_name != "none":
        return unsupported["*"]
    return None


def _options(names: list[str]) -> str:
    return ", ".join(names) if names else "none registered"


def resolve(registry: Registry, model: str, method: str, peft: str, evaluator: str) -> Approach:
    """Check one combination by component names; raise :class:`ConfigError` saying why it
    cannot work and what would. Needs no GPU, data or model weights, except that
    ``quantizable`` adaptations (QLoRA) ask whether this machine can run them."""
    loader_cls = registry.get("model", model).cls
    method_cls = registry.get("method", method).cls
    peft_cls = registry.get("peft", peft).cls
    eval_cls = registry.get("evaluator", evaluator).cls

    wanted = method_tasks(method_cls)
    served = tuple(getattr(loader_cls, "tasks", ("causal_lm",)))
    task = next((t for t in wanted if t in served), None)
    if task is None:
        models = [
            n for n in registry.names("model") if set(wanted) & set(getattr(registry.get("model", n).cls, "tasks", ()))
        ]
        methods = [
            n for n in registry.names("method") if set(method_tasks(registry.get("method", n).cls)) & set(served)
        ]
        raise ConfigError(
            f"method={method} needs a model loaded as {' or '.join(wanted)}, but model={model} loads only "
            f"{', '.join(served)}. Models that can: {_options(models)}; or pick a method for {model}: "
            f"{_options(methods)}"
        )

    refusal = peft_refusal(method_cls, peft)
    if refusal:
        usable = [
            n
            for n in registry.names("peft")
            if peft_refusal(method_cls, n) is None and task in getattr(registry.get("peft", n).cls, "tasks", ())
        ]
        raise ConfigError(
            f"method={method} with peft={peft}: {refusal}. peft options that work with {method}: {_options(usable)}"
        )
    adapts = tuple(getattr(peft_cls, "tasks", ()))
    if task not in adapts:
        usable = [
            n
            for n in registry.names("peft")
            if task in getattr(registry.get("peft", n).cls, "tasks", ()) and peft_refusal(method_cls, n) is None
        ]
        raise ConfigError(
            f"peft={peft} adapts models loaded as {', '.join(adapts) or 'nothing'}, "
            f"but method={method} on model={model} "
            f"trains one loaded as {task}. peft options for it: {_options(usable)}"
        )
    if getattr(peft_cls, "load_in_4bit", False):
        if not getattr(loader_cls, "quantizable", False):
            able = [n for n in registry.names("model") if getattr(registry.get("model", n).cls, "quantizable", False)]
            raise ConfigError(
                f"peft={peft} trains on a 4-bit base, which model={model} cannot load. Models that can: "
                f"{_options(able)}; or use peft=lora"
            )
        reason = peft_cls.unavailable_reason() if hasattr(peft_cls, "unavailable_reason") else None
        if reason:
            raise ConfigError(f"peft={peft}: {reason}")

    result = produces(method_cls, task)
    scores = tuple(getattr(eval_cls, "scores", ()))
    if scores and result not in scores:
        able = [
            n
            for n in registry.names("evaluator")
            if not getattr(registry.get("evaluator", n).cls, "scores", ())
            or result in registry.get("evaluator", n).cls.scores
        ]
        raise ConfigError(
            f"eval={evaluator} scores {' or '.join(scores)} models, but method={method} on model={model} produces a "
            f"{result} model. Evaluators for it: {_options(able)}"
        )
    return Approach(task=task, produces=result)


def check_approach(rc: RunConfig, registry: Registry) -> Approach:
    """:func:`resolve` for a validated run config, and whether this machine can train at
    ``train.precision`` (bf16/fp16 need a CUDA GPU; otherwise transformers refuses once the
    data is prepared and the model loaded)."""
    approach = resolve(registry, rc.model.name, rc.method.name, rc.peft.name, rc.evaluator.name)
    _check_evaluation_split(rc, registry)
    precision = rc.train.precision
    if precision in ("bf16", "fp16"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(
                f"train.precision={precision} needs a CUDA GPU and this machine has none; "
                "use train.precision=auto (bf16 where the GPU supports it, fp32 otherwise) or fp32"
            )
        if precision == "bf16" and not torch.cuda.is_bf16_supported():
            raise ConfigError(
                "train.precision=bf16: this GPU does not support bfloat16; use train.precision=fp16 or auto"
            )
    return approach


def _check_evaluation_split(rc: RunConfig, registry: Registry) -> None:
    """``eval.split`` names a split the splitter does not make (``holdout``) or is set to
    leave empty (``test: 0``): found here, not after training."""
    split = getattr(rc.evaluator.config, "split", None)
    if isinstance(split, str) and rc.splitter:
        made = tuple(getattr(registry.get("splitter", rc.splitter.name).cls, "splits", ()))
        if made and split not in made:
            raise ConfigError(
                f"eval.split is '{split}', a split the splitter '{rc.splitter.name}' does not make; "
                f"it makes {', '.join(made)}: set eval.split to one of those "
                f"(eval.split={'test' if 'test' in made else made[-1]})"
            )
    fraction = getattr(rc.splitter.config, split, None) if isinstance(split, str) and rc.splitter else None
    if isinstance(fraction, (int, float)) and not isinstance(fraction, bool) and fraction == 0:
        step, other = rc.splitter.step, "validation" if split == "test" else "test"
        raise ConfigError(
            f"eval.split is '{split}' but pipeline.params.{step}.{split} is 0, "
            "so that split has no rows to evaluate on; "
            f"give it rows (pipeline.params.{step}.{split}=0.1) or evaluate another split (eval.split={other})"
        )


def check_evaluation_rows(rc: RunConfig, split_sizes: dict[str, int], summary: dict[str, Any] | None = None) -> None:
    """After the data is prepared and before the model is loaded: the split ``eval.split``
    names has rows (fractions too small for the data can round a split down to none).

    The fix offered is the splitter's own (``summary["metadata"][step]["empty_splits"]``:
    ``pipeline.split=random`` or the fraction that would give the split a row); a fraction
    that is set already is never suggested again."""
    split = getattr(rc.evaluator.config, "split", None)
    if not isinstance(split, str) or split_sizes.get(split, 0) > 0:
        return
    have = ", ".join(f"{name} ({rows} rows)" for name, rows in split_sizes.items())
    step = rc.splitter.step if rc.splitter else ""
    explained = ((summary or {}).get("metadata", {}).get(step, {}).get("empty_splits") or {}).get(split)
    fraction = getattr(rc.splitter.config, split, None) if rc.splitter else None
    if explained:
        fix = f"it is empty because {explained['why']}; fix: {explained['fix']}"
    elif isinstance(fraction, (int, float)) and not isinstance(fraction, bool) and fraction > 0:
        fix = (
            f"pipeline.params.{step}.{split}={fraction} is too small for this data: give that split a larger "
            f"fraction or more data"
        )
    else:
        fix = (
            f"give that split rows (pipeline.params.{step}.{split}=0.1)"
            if step
            else f"give the splitter a '{split}' fraction"
        )
    raise ConfigError(
        f"eval.split is '{split}' but the prepared data has no '{split}' rows (splits: {have}); {fix}; or evaluate a "
        "split that has rows (eval.split=...); found before training"
    )
