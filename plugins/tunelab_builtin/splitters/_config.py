"""What every splitter shares: the split names, the safety fields (``eval_derived`` and the
leakage check) and the checks of those fields and of the split fractions."""

from __future__ import annotations

from dataclasses import dataclass, field

SPLITS = ("train", "validation", "test")
EVAL_SPLITS = ("validation", "test")
LEAKAGE_MODES = ("fix", "report", "off")


@dataclass
class SplitSafetyConfig:
    #: derived rows whose root landed in validation/test: drop (evaluate on originals only) or keep them there
    eval_derived: str = "drop"
    #: train/evaluation leakage: fix (drop the leaking validation/test row), report (count only), off
    leakage: str = "fix"
    #: text columns compared by the leakage check; empty: prompt+completion, else text, whichever exist
    leakage_fields: list[str] = field(default_factory=list)
    #: estimated Jaccard similarity from which a validation/test row is a near duplicate of a train row;
    #: 0 skips that check
    near_duplicate_threshold: float = 0.8


def check_safety(name: str, c: SplitSafetyConfig) -> None:
    if c.eval_derived not in ("drop", "keep"):
        raise ValueError(f"{name}.eval_derived must be 'drop' or 'keep', got {c.eval_derived!r}")
    if c.leakage not in LEAKAGE_MODES:
        raise ValueError(f"{name}.leakage must be one of {', '.join(LEAKAGE_MODES)}, got {c.leakage!r}")
    if not 0.0 <= c.near_duplicate_threshold <= 1.0:
        raise ValueError(
            f"{name}.near_duplicate_threshold must be in [0, 1] (0 turns the near-duplicate check off), "
            f"got {c.near_duplicate_threshold}"
        )


def check_fractions(name: str, validation: float, test: float) -> None:
    if validation < 0 or test < 0 or validation + test >= 1:
        raise ValueError(
            f"{name}: validation and test fractions must be >= 0 and sum to less than 1 "
            f"(got validation={validation}, test={test})"
        )
