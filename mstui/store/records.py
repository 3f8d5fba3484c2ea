"""Conversions between the core's records (RoundRecord, Decision) and store rows."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

from mstui.core.types import (
    Action,
    CacheSource,
    Decision,
    FinishReason,
    Observation,
    RoundRecord,
)

ROUND_COLUMNS = (
    "idx",
    "prompt",
    "response",
    "answer",
    "answer_text",
    "extraction_rule",
    "correct",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "finish_reason",
    "prompt_seconds",
    "gen_seconds",
    "obs_found",
    "obs_changed",
    "obs_agreement",
    "obs_logprob",
    "error",
    "thinking",
    "final",
    "truncated",
    "thinking_tokens",
    "obs_truncated",
    "obs_thinking_tokens",
    "judge",
    "grade_error",
    "cached_source",
)
DECISION_COLUMNS = (
    "round",
    "action",
    "rule",
    "reason",
    "policy",
    "belief",
    "pi",
    "lam",
    "expected_gain",
    "price",
    "round_cost",
    "cap",
    "override",
    "extra",
)


def now() -> str:
    """UTC now as ISO 8601 with milliseconds: fixed width, so text order is time order."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def as_time(value: datetime | str) -> str:
    """A since/until bound in the stored format (naive datetimes are taken as UTC)."""
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds")


def _bool(v: bool | None) -> int | None:
    return None if v is None else int(bool(v))


def _unbool(v: Any) -> bool | None:
    return None if v is None else bool(v)


def round_row(run_id: int, r: RoundRecord) -> dict[str, Any]:
    """The rounds-table row of a RoundRecord."""
    o = r.observation
    return {
        "run_id": run_id,
        "idx": r.index,
        "prompt": r.prompt,
        "response": r.response,
        "answer": r.answer,
        "answer_text": r.answer_text,
        "extraction_rule": r.extraction_rule,
        "correct": _bool(r.correct),
        "prompt_tokens": r.prompt_tokens,
        "completion_tokens": r.completion_tokens,
        "cached_tokens": r.cached_tokens,
        "finish_reason": r.finish_reason,
        "prompt_seconds": r.prompt_seconds,
        "gen_seconds": r.gen_seconds,
        "obs_found": _bool(o.found),
        "obs_changed": _bool(o.changed),
        "obs_agreement": o.agreement,
        "obs_logprob": o.logprob,
        "error": r.error,
        "thinking": r.thinking or None,
        "final": r.final,
        "truncated": int(r.truncated),
        "thinking_tokens": r.thinking_tokens,
        "obs_truncated": int(o.truncated),
        "obs_thinking_tokens": o.thinking_tokens,
        "judge": r.judge,
        "grade_error": r.grade_error,
        "cached_source": r.cached_source,
    }


def round_record(row: Mapping[str, Any]) -> RoundRecord:
    """Rebuild a RoundRecord from a rounds-table row (or an exported round object)."""
    return RoundRecord(
        index=int(row["idx"]),
        prompt=row["prompt"],
        response=row["response"],
        answer=row["answer"],
        answer_text=row["answer_text"],
        extraction_rule=row["extraction_rule"] or "none",
        correct=_unbool(row["correct"]),
        prompt_tokens=int(row["prompt_tokens"] or 0),
        completion_tokens=int(row["completion_tokens"] or 0),
        cached_tokens=int(row["cached_tokens"] or 0),
        finish_reason=cast(FinishReason, row["finish_reason"] or "stop"),
        prompt_seconds=float(row["prompt_seconds"] or 0.0),
        gen_seconds=float(row["gen_seconds"] or 0.0),
        observation=Observation(
            found=bool(row["obs_found"]),
            changed=_unbool(row["obs_changed"]),
            agreement=row["obs_agreement"],
            logprob=row["obs_logprob"],
            truncated=bool(row.get("obs_truncated") or 0),
            thinking_tokens=row.get("obs_thinking_tokens"),
        ),
        error=row["error"],
        thinking=row.get("thinking") or "",
        final=row.get("final"),
        truncated=bool(row.get("truncated") or 0),
        thinking_tokens=int(row.get("thinking_tokens") or 0),
        # Exports written before judges were recorded have no such keys.
        judge=row.get("judge"),
        grade_error=row.get("grade_error"),
        cached_source=_cache_source(row.get("cached_source")),
    )


def _cache_source(value: Any) -> CacheSource | None:
    """A stored cache-count label; anything unknown (an edited file) reads as not known."""
    return cast(CacheSource, value) if value in ("reported", "estimated") else None


def decision_row(run_id: int, d: Decision) -> dict[str, Any]:
    """The decisions-table row of a Decision."""
    return {
        "run_id": run_id,
        "round": d.round,
        "action": d.action,
        "rule": d.rule,
        "reason": d.reason,
        "policy": d.policy,
        "belief": d.belief,
        "pi": d.pi,
        "lam": d.lam,
        "expected_gain": d.expected_gain,
        "price": d.price,
        "round_cost": d.round_cost,
        "cap": d.cap,
        "override": d.override,
        "extra": json.dumps(d.extra, sort_keys=True) if d.extra else None,
    }


def decision(row: Mapping[str, Any]) -> Decision:
    """Rebuild a Decision from a decisions-table row (or an exported decision object)."""
    extra = row["extra"]
    if isinstance(extra, str):
        extra = json.loads(extra)
    return Decision(
        round=int(row["round"]),
        action=cast(Action, row["action"]),
        rule=row["rule"] or "",
        reason=row["reason"] or "",
        policy=row["policy"] or "",
        belief=row["belief"],
        pi=row["pi"],
        lam=row["lam"],
        expected_gain=row["expected_gain"],
        price=row["price"],
        round_cost=row["round_cost"],
        cap=row["cap"],
        override=cast("Action | None", row["override"]),
        extra=dict(extra or {}),
    )


def loads_json(value: Any) -> Any:
    """Parse a JSON text column; None stays None."""
    return json.loads(value) if isinstance(value, str) else value
