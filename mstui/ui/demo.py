"""Deterministic demo traces (runs, decisions, a fit) for UI tests, snapshots and the benchmark."""

from __future__ import annotations

import dataclasses
import random
import sqlite3
from pathlib import Path
from typing import Any

from mstui.core.fitting import fit_chain, fit_checks
from mstui.core.policies import parse_policy
from mstui.core.types import RoundRecord
from mstui.store import Store
from mstui.store.sample import sample_round
from mstui.ui.services import check_dicts

MODEL = "scripted"  # ScriptedBackend's model name, so live scripted runs find the demo fit
SCOPE = {"model": MODEL, "problem_set": "gen:L2", "strategy": "reanswer"}
SCRIPT = [
    " 12 apples and 5 pears make 12 + 5 = 18. The answer is 18.",
    " Let me recompute: 12 + 5 = 17. The answer is 17.",
    " Checking again, 12 + 5 = 17. The answer is \\boxed{17}.",
    " 12 + 5 = 17, so the answer is 17.",
]


def demo_history(i: int, rounds: int = 4, a: float = 0.15, b: float = 0.4) -> list[RoundRecord]:
    """Question i run to `rounds` rounds, correctness drawn from a (a, b) chain, seeded by i."""
    rng = random.Random(i)
    gold = 10 + i
    ok = rng.random() < 0.5
    out: list[RoundRecord] = []
    prev: str | None = None
    for t in range(rounds):
        if t:
            ok = (rng.random() >= a) if ok else (rng.random() < b)
        answer = str(gold) if ok else str(gold + rng.randint(1, 3))
        out.append(sample_round(t, answer=answer, correct=ok, rng=rng, previous=prev))
        prev = answer
    return out


def _store_run(
    store: Store, i: int, history: list[RoundRecord], spec: str, fit_id: int | None, fit: Any
) -> int:
    # Demo traces replay a scripted scenario (any size, for tests and screenshots); they are not a
    # live decision, so a small demo fit is allowed to drive them.
    policy = parse_policy(spec, fit, allow_sparse=True)
    run_id = store.start_run(
        question=f"Demo question {i}: how many apples are left?",
        gold=str(10 + i),
        max_rounds=len(history),
        model=MODEL,
        backend="scripted",
        problem_set=SCOPE["problem_set"],
        problem_id=f"q{i:03d}",
        level=2,
        strategy="reanswer",
        policy=policy.spec,
        fit_id=fit_id,
        settings={"price": 0.0},
    )
    for t in range(len(history)):
        decision = policy.decide(history[: t + 1], len(history))
        store.add_round(run_id, history[t], decision)
        if decision.final_action == "stop":
            break
    store.finish_run(run_id, "finished")
    return run_id


def fit_time(pool_runs: int) -> str:
    """When the demo's fit was made. Run n starts n minutes after 2025-01-01T00:00 UTC; the
    fit is dated after the pool it was made from and before the markov runs that use it, as
    in a real session (what-if over the set tells in-sample runs by these dates)."""
    return f"2025-01-01T{pool_runs // 60:02d}:{pool_runs % 60:02d}:30+00:00"


def demo_store(path: str | Path, questions: int = 16) -> dict[str, Any]:
    """A trace file with a fixed:3 pool of `questions` runs, its fit, and 4 markov runs.

    Timestamps are fixed so screens built from it are the same on every machine.
    """
    histories = [demo_history(i) for i in range(questions)]
    qids = [f"q{i:03d}" for i, h in enumerate(histories) for _ in h]
    rounds = [r.index for h in histories for r in h]
    correct = [bool(r.correct) for h in histories for r in h]
    fit = fit_chain(qids, rounds, correct, scope="scripted × gen:L2 × reanswer")
    fit = dataclasses.replace(fit, created=fit_time(questions))
    checks = check_dicts(fit_checks(qids, rounds, correct, fit))
    with Store(path) as store:
        fit_id = store.save_fit(SCOPE, fit.to_dict() | {"checks": checks})
        pool = [_store_run(store, i, h, "fixed:3", None, None) for i, h in enumerate(histories)]
        markov = [
            _store_run(store, i, histories[i], "markov", fit_id, fit)
            for i in range(min(4, questions))
        ]
        store.close()
    con = sqlite3.connect(path)
    with con:
        con.execute(
            "UPDATE runs SET started_at = strftime('2025-01-01T%H:%M:%S.000+00:00', "
            "id * 60, 'unixepoch'), finished_at = strftime("
            "'2025-01-01T%H:%M:%S.000+00:00', id * 60 + 30, 'unixepoch')"
        )
        con.execute("UPDATE fits SET created_at = ?", [fit_time(questions)])
    con.close()
    return {"fit": fit, "fit_id": fit_id, "pool": pool, "markov": markov, "histories": histories}
