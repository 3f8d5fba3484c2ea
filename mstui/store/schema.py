"""The trace-store schema, in one place, as numbered sqlite-utils migrations."""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

# The set name recorded in `_sqlite_migrations`; other tools may keep their own sets in the file.
MIGRATION_SET = "mstui"

migrations = Migrations(MIGRATION_SET)

# Never edit a migration once released: add a new one. Each runs in one transaction with the
# record of it having run (sqlite-utils), and the store wraps the whole apply in BEGIN IMMEDIATE
# so two processes opening a fresh file cannot both migrate it.


@migrations(name="m001_tables")
def m001_tables(db: Database) -> None:
    """Models, problems, runs, rounds, decisions and fits, with the indexes listing needs."""
    db.table("models").create(
        {
            "name": str,  # the name runs refer to (file stem or server model id)
            "path": str,
            "sha256": str,
            "size_bytes": int,
            "architecture": str,
            "quantization": str,
            "backend": str,
            "details": str,  # JSON: anything else the backend reports
            "added_at": str,
            "updated_at": str,
        },
        pk="name",
        not_null={"added_at"},
    )
    db.table("problems").create(
        {
            "problem_set": str,
            "id": str,
            "question": str,
            "gold": str,
            "level": int,
            "source": str,  # where the item came from (file, generator seed, URL)
            "extra": str,  # JSON
        },
        pk=("problem_set", "id"),
        not_null={"question"},
    )
    db.table("runs").create(
        {
            "id": int,
            # Globally unique identity, so an exported run re-imported elsewhere is recognised.
            "uuid": str,
            "started_at": str,  # ISO 8601 UTC, millisecond precision: sorts as text
            "finished_at": str,
            "status": str,  # running / finished / interrupted / cancelled / failed
            "model": str,
            "backend": str,
            "problem_set": str,
            "problem_id": str,
            "level": int,
            "question": str,
            "gold": str,
            "strategy": str,
            "policy": str,
            "max_rounds": int,
            "fit_id": int,  # the fit the policy used (not a foreign key: fits may be pruned)
            "sweep": str,  # label grouping the runs of one sweep, NULL for single runs
            "settings": str,  # JSON: generation settings, price κ, prompt format, …
            "final_round": int,
            "final_answer": str,
            "final_answer_text": str,
            "final_correct": int,  # 1 / 0 / NULL when no gold
            "n_rounds": int,
            "total_tokens": int,
            "error": str,
            # Who is writing this run: liveness check before a reader marks it interrupted.
            "writer_host": str,
            "writer_pid": int,
            "writer_token": str,  # boot id + process start time: survives pid reuse
        },
        pk="id",
        not_null={"uuid", "started_at", "status", "question", "max_rounds"},
        defaults={"n_rounds": 0, "total_tokens": 0},
    )
    db.table("rounds").create(
        {
            # An INTEGER PRIMARY KEY, not (run_id, idx): the FTS index keys on rowid, and an
            # implicit rowid may be renumbered by VACUUM, which would corrupt the index.
            "id": int,
            "run_id": int,
            "idx": int,
            "prompt": str,
            "response": str,
            "answer": str,
            "answer_text": str,
            "extraction_rule": str,
            "correct": int,
            "prompt_tokens": int,
            "completion_tokens": int,
            "cached_tokens": int,
            "finish_reason": str,
            "prompt_seconds": float,
            "gen_seconds": float,
            "obs_found": int,
            "obs_changed": int,
            "obs_agreement": float,
            "obs_logprob": float,
            "error": str,
            "created_at": str,
        },
        pk="id",
        not_null={"run_id", "idx", "prompt", "response", "created_at"},
        foreign_keys=[("run_id", "runs", "id")],
    )
    db.table("decisions").create(
        {
            "id": int,
            "run_id": int,
            "round": int,
            "action": str,
            "rule": str,
            "reason": str,
            "policy": str,
            "belief": float,
            "pi": float,
            "lam": float,
            "expected_gain": float,
            "price": float,
            "round_cost": float,
            "cap": int,
            "override": str,
            "extra": str,  # JSON
            "created_at": str,
        },
        pk="id",
        not_null={"run_id", "round", "action", "created_at"},
        foreign_keys=[("run_id", "runs", "id")],
    )
    db.table("fits").create(
        {
            "id": int,
            "scope": str,  # canonical JSON of the scope, for exact matching
            "model": str,
            "problem_set": str,
            "strategy": str,
            "level": int,
            "created_at": str,
            "n_questions": int,
            "n_rounds": int,
            "n_cc": int,
            "n_cw": int,
            "n_wc": int,
            "n_ww": int,
            "a": float,
            "a_lo": float,
            "a_hi": float,
            "b": float,
            "b_lo": float,
            "b_hi": float,
            "p0": float,
            "pi": float,
            "lam": float,
            "checks": str,  # JSON
            "fit_json": str,  # the whole fit, as the fitter returned it
        },
        pk="id",
        not_null={"scope", "created_at", "fit_json"},
    )
    runs = db.table("runs")
    runs.create_index(["uuid"], unique=True)
    # Newest-first listing, alone and under each common filter.
    runs.create_index(["started_at"])
    runs.create_index(["model", "started_at"])
    runs.create_index(["problem_set", "started_at"])
    runs.create_index(["policy", "started_at"])
    runs.create_index(["final_correct", "started_at"])
    runs.create_index(["status"])
    # Scope scans (fitting, resumable sweeps); equal prefix keeps rows in id order.
    runs.create_index(["model", "problem_set", "strategy"])
    db.table("rounds").create_index(["run_id", "idx"], unique=True)
    db.table("decisions").create_index(["run_id", "round"], unique=True)
    db.table("fits").create_index(["scope", "created_at"])


@migrations(name="m002_fts")
def m002_fts(db: Database) -> None:
    """Full-text search over round responses, kept in sync by triggers."""
    db.table("rounds").enable_fts(["response"], fts_version="FTS5", create_triggers=True)


@migrations(name="m003_reasoning")
def m003_reasoning(db: Database) -> None:
    """A round's thinking and final parts (DESIGN §2.1), whether it ended inside its thinking,
    and the matching observation features. `response` keeps the full raw text (thinking and
    final, tags included), so the full-text index over it finds words in either part; `final`
    is NULL for a model that does not think (the whole response is final)."""
    rounds = db.table("rounds")
    rounds.add_column("thinking", str)
    rounds.add_column("final", str)
    rounds.add_column("truncated", int, not_null_default=0)
    rounds.add_column("thinking_tokens", int, not_null_default=0)
    rounds.add_column("obs_truncated", int, not_null_default=0)
    rounds.add_column("obs_thinking_tokens", int)


@migrations(name="m004_grading")
def m004_grading(db: Database) -> None:
    """Who graded each round, the gold as given, regrading history, and stale fits."""
    # The gold as the source wrote it (`\\boxed{14{,}916}`), beside the normalized `gold`: an
    # equivalence judge needs the original, and regrading needs whatever the next grader needs.
    db.table("problems").add_column("gold_raw", str)
    db.table("runs").add_column("gold_raw", str)
    # "exact", "math-verify", "none", "timeout" or "error" (core.grading); NULL for rounds
    # graded before this migration. `grade_error` says why a round is ungraded.
    db.table("rounds").add_column("judge", str)
    db.table("rounds").add_column("grade_error", str)
    # Set (to why and when) when a regrade changed labels the fit was made from.
    db.table("fits").add_column("stale", str)
    db.table("grade_history").create(
        {
            "id": int,
            "round_id": int,
            "run_id": int,
            "idx": int,
            "changed_at": str,
            "grader": str,  # the grader that replaced these values, with its version
            # The round's values before the regrade …
            "correct": int,
            "judge": str,
            "answer": str,
            "answer_text": str,
            "extraction_rule": str,
            # … and after it, so a history row reads on its own.
            "new_correct": int,
            "new_judge": str,
        },
        pk="id",
        not_null={"round_id", "run_id", "idx", "changed_at"},
        foreign_keys=[("round_id", "rounds", "id"), ("run_id", "runs", "id")],
    )
    db.table("grade_history").create_index(["round_id"])
    db.table("grade_history").create_index(["run_id", "idx"])


# Named m004 on its own branch, merged after m004_grading: names, not numbers, identify
# migrations, so files that ran either keep their record.
@migrations(name="m004_cache_source")
def m004_cache_source(db: Database) -> None:
    """Where a round's cached_tokens came from: 'reported' by the server (llama-server's timings,
    an OpenAI-style usage.prompt_tokens_details), 'estimated' by mstui (the in-process engine
    applies llama.cpp's prefix rule itself), NULL when not known (then cached_tokens is 0).
    Rounds stored earlier by the in-process or scripted engine were counted by that same rule,
    so they are marked estimated; earlier remote rounds stay unknown."""
    db.table("rounds").add_column("cached_source", str)
    db.execute("UPDATE rounds SET cached_source = 'estimated' WHERE run_id IN "
               "(SELECT id FROM runs WHERE backend IN ('llama.cpp', 'scripted'))")


# Schema version N means the first N migrations have run; it is also written to
# PRAGMA user_version so other SQLite tools (and an old mstui) can read it cheaply.
MIGRATION_NAMES: list[str] = [m.name for m in migrations._migrations]
SCHEMA_VERSION = len(MIGRATION_NAMES)


def applied_version(db: Database) -> int:
    """The schema version recorded in the file: the larger of user_version and our migration count.

    Reading both guards against a file whose user_version was reset by another tool.
    """
    user_version = int(db.execute("PRAGMA user_version").fetchone()[0])
    applied = [m.name for m in migrations.applied(db)]
    version = max(user_version, len(applied))
    if any(name not in MIGRATION_NAMES for name in applied):
        # A migration this code has never heard of: written by a newer mstui.
        version = max(version, SCHEMA_VERSION + 1)
    return version


def migrate(db: Database, *, upto: int | None = None) -> int:
    """Apply pending migrations (all, or the first `upto`) inside one IMMEDIATE transaction.

    Returns the resulting version. The caller has already refused files newer than this code.
    """
    target = SCHEMA_VERSION if upto is None else upto
    stop_before = MIGRATION_NAMES[target] if target < SCHEMA_VERSION else None
    # IMMEDIATE takes the write lock first, so a second process waits (busy timeout) and then
    # sees the migrations already applied instead of racing to create the same tables.
    db.execute("BEGIN IMMEDIATE")
    try:
        migrations.apply(db, stop_before=stop_before)
        version = len(migrations.applied(db))
        db.execute(f"PRAGMA user_version = {int(version)}")
        db.execute("COMMIT")
    except BaseException:
        db.rollback()
        raise
    return version
