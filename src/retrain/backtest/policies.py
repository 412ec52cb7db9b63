"""Retraining policies a backtest compares, parsed from names like ``every:3``.

Each policy is a small rule over the window index (pure); ``drift`` is the exception: it asks
the real trigger policy (`retrain.triggers.policy.decide`), which the replay drives with the
drift engine's verdict on each window and a simulated clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from retrain.errors import ValidationError

__all__ = [
    "BASELINE_VARIANTS",
    "POLICY_KINDS",
    "POLICY_MIXES",
    "PROVISIONAL",
    "PolicySpec",
    "parse_policies",
]

PolicyKind = Literal["never", "every", "drift", "continuous", "always", "full_refit"]
POLICY_KINDS: tuple[str, ...] = ("never", "every", "drift", "continuous", "always", "full_refit")
#: Training mixes a policy may name after '@' (``always@weighted``): `training.mix` values.
POLICY_MIXES: tuple[str, ...] = ("sample", "weighted")
#: What a retraining policy may name after '@' instead of a mix (``always@provisional``): it
#: also trains and judges on the labels known so far of recent windows not yet in history
#: (`labels.provisional_windows`).
PROVISIONAL = "provisional"
#: What ``full_refit`` may name after '@': ``train_rows`` leaves the evaluation rows out.
BASELINE_VARIANTS: tuple[str, ...] = ("train_rows",)


@dataclass(frozen=True)
class PolicySpec:
    """One retraining policy.

    Args:
        kind: never | every | drift | continuous | always | full_refit (the plain
            scikit-learn baseline: `retrain.backtest.baseline`).
        every: for ``every``, retrain on every N-th labelled window.
        mix: the `training.mix` this policy trains with (None: the config's), or
            `PROVISIONAL`; for ``full_refit``, its variant (`BASELINE_VARIANTS`).
    """

    kind: PolicyKind
    every: int = 1
    mix: str | None = None

    @property
    def name(self) -> str:
        """The policy as written on the command line (and its output folder's name)."""
        base = f"every-{self.every}" if self.kind == "every" else self.kind
        return f"{base}@{self.mix}" if self.mix else base

    def scheduled(self, labelled_index: int) -> bool:
        """Whether a schedule-like policy retrains on the labelled window at this index.

        The first labelled window (index 0) always trains: every policy needs a first model.
        ``drift`` answers only for that first window; the trigger policy decides the rest.
        """
        if labelled_index < 0:
            return False
        if labelled_index == 0:
            return True
        if self.kind in ("always", "continuous"):
            return True
        if self.kind == "every":
            return labelled_index % self.every == 0
        return False


def parse_policies(text: str) -> list[PolicySpec]:
    """Parse ``never,every:N,drift,continuous,always,full_refit`` into policies (order kept,
    no repeats). A policy may name its training mix: ``always@weighted``, or provisional
    labels: ``always@provisional``; the baseline its variant: ``full_refit@train_rows``.

    Raises:
        ValidationError: an unknown name, a bad N, a repeat, or nothing at all (names --policies).
    """
    out: list[PolicySpec] = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        item, _, mix = item.partition("@")
        kind, _, arg = item.partition(":")
        if kind not in POLICY_KINDS:
            raise ValidationError(
                f"--policies: unknown policy {item!r}; use never, every:N, drift, continuous, "
                "always or full_refit"
            )
        if kind == "full_refit" and mix and mix not in BASELINE_VARIANTS:
            raise ValidationError(
                f"--policies: {item}@{mix}: the baseline's variants are "
                f"{', '.join(BASELINE_VARIANTS)} (full_refit@train_rows)"
            )
        variants = (*POLICY_MIXES, PROVISIONAL)
        if mix and kind != "full_refit" and (mix not in variants or kind == "never"):
            raise ValidationError(
                f"--policies: {item}@{mix}: a retraining policy may name a training mix "
                f"({' or '.join(POLICY_MIXES)}), e.g. always@weighted, or {PROVISIONAL} "
                f"(always@{PROVISIONAL}: also the labels known so far of recent windows)"
            )
        if kind == "every":
            if not arg.isdigit() or int(arg) < 1:
                raise ValidationError(f"--policies: {item!r} needs a positive N, e.g. every:3")
            spec = PolicySpec("every", int(arg), mix or None)
        elif arg:
            raise ValidationError(f"--policies: policy {kind!r} takes no argument ({item!r})")
        else:
            spec = PolicySpec(kind, mix=mix or None)  # type: ignore[arg-type]
        if spec in out:
            raise ValidationError(f"--policies: {item!r} is listed twice")
        out.append(spec)
    if not out:
        raise ValidationError("--policies: name at least one policy")
    return out
