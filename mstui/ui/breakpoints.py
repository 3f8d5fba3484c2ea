"""Step-through breakpoints: pause when the decision flips, the answer changes, q_t crosses θ."""

from __future__ import annotations

from dataclasses import dataclass

from mstui.core.types import Decision, RoundRecord


@dataclass
class Breakpoints:
    """Which conditions pause a run before its decision takes effect (all off by default)."""

    flip: bool = False  # the policy's action differs from its previous one
    answer_change: bool = False  # this round's answer differs from the previous round's
    threshold: float | None = None  # the belief crossed this value since the previous decision

    def describe(self) -> str:
        """Short text for the status line, e.g. 'flip, answer, q↔0.50'."""
        parts = [name for name, on in (("flip", self.flip), ("answer", self.answer_change)) if on]
        if self.threshold is not None:
            parts.append(f"q↔{self.threshold:.2f}")
        return ", ".join(parts) or "none"


def hit(
    bp: Breakpoints,
    decision: Decision,
    previous: Decision | None,
    record: RoundRecord,
    prev_belief: float | None,
    belief: float | None,
) -> str | None:
    """The reason to pause before `decision`, or None when no breakpoint fires."""
    if bp.flip and previous is not None and previous.action != decision.action:
        return f"breakpoint: decision flipped {previous.action} → {decision.action}"
    if bp.answer_change and record.observation.changed:
        return f"breakpoint: answer changed to {record.answer_text or '(none)'}"
    if bp.threshold is not None and prev_belief is not None and belief is not None:
        th = bp.threshold
        # Crossing in either direction; touching θ from one side counts once.
        if (prev_belief < th) != (belief < th):
            return f"breakpoint: belief crossed {th:.2f} ({prev_belief:.3f} → {belief:.3f})"
    return None
