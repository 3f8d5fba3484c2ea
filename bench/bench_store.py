"""Benchmark the trace store: per-round commits, listing, search, filters, streaming, peak RSS.

python bench/bench_store.py [--runs 100000] [--rounds 8] [--db PATH]
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mstui.store import Store
from mstui.store.records import decision_row, round_row
from mstui.store.sample import response_text, sample_decision, sample_round

MODELS = ["smollm2-135m", "qwen2.5-1.5b", "r1-distill-7b", "llama3.1-8b"]
SETS = ["builtin", "gsm8k"]
RARE = "pineapple"  # in about one run in a thousand: a selective full-text search


def median_ms(fn: Callable[[], Any], repeats: int = 7) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def run_meta(i: int, rng: random.Random) -> dict[str, Any]:
    return {
        "model": MODELS[i % len(MODELS)],
        "problem_set": SETS[(i // len(MODELS)) % len(SETS)],
        "problem_id": f"q{i % 500}",
        "gold": "42",
        "strategy": "reanswer",
        "policy": "markov" if i % 3 else "fixed:8",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--sample", type=int, default=2000, help="rounds timed through add_round")
    ap.add_argument("--db", type=Path, default=None)
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    path = args.db or Path(tmp.name) / "bench.db"
    rng = random.Random(0)
    pool = [response_text(rng, str(rng.randint(0, 99))) for _ in range(2000)]
    store = Store(path)
    R = args.rounds

    # 1. Per-round commits through the real API (one transaction + fsync each, as in a live run).
    sample_runs = max(1, args.sample // R)
    commit_ms: list[float] = []
    for i in range(sample_runs):
        rid = store.start_run(question=f"question {i}", max_rounds=R, **run_meta(i, rng))
        for k in range(R):
            rec = sample_round(k, answer=str(40 + k % 3), correct=rng.random() < 0.6,
                               response=pool[rng.randrange(len(pool))])  # fmt: skip
            t = time.perf_counter()
            store.add_round(rid, rec, sample_decision(k, stop=k == R - 1))
            commit_ms.append((time.perf_counter() - t) * 1000)
        store.finish_run(rid, "finished")
    print(f"per-round commit (add_round, round + decision, synchronous=FULL, WAL), "
          f"{len(commit_ms)} commits: median {statistics.median(commit_ms):.3f} ms, "
          f"p95 {sorted(commit_ms)[int(0.95 * len(commit_ms))]:.3f} ms, "
          f"≈ {1000 / statistics.median(commit_ms):,.0f} rounds/s")  # fmt: skip

    # 1b. The same with durable=False (synchronous=NORMAL), for comparison, in its own file.
    fast = Store(Path(tmp.name) / "fast.db", durable=False)
    fast_ms: list[float] = []
    for i in range(sample_runs):
        rid = fast.start_run(question=f"question {i}", max_rounds=R, **run_meta(i, rng))
        for k in range(R):
            rec = sample_round(k, response=pool[rng.randrange(len(pool))])
            t = time.perf_counter()
            fast.add_round(rid, rec, sample_decision(k))
            fast_ms.append((time.perf_counter() - t) * 1000)
    fast.close()
    print(f"per-round commit with durable=False (synchronous=NORMAL): "
          f"median {statistics.median(fast_ms):.3f} ms, "
          f"p95 {sorted(fast_ms)[int(0.95 * len(fast_ms))]:.3f} ms")  # fmt: skip

    # 2. Bulk-build the rest with executemany in big transactions (FTS triggers still fire),
    # so the benchmark finishes in minutes; this is not how a live run writes.
    t0 = time.perf_counter()
    base = datetime(2025, 1, 1, tzinfo=UTC)
    rounds_sql = decisions_sql = ""
    total = args.runs - sample_runs
    batch = 5000
    for start in range(0, total, batch):
        n = min(batch, total - start)
        runs, rounds, decisions = [], [], []
        for j in range(start, start + n):
            meta = run_meta(j, rng)
            started = (base + timedelta(seconds=30 * j)).isoformat(timespec="milliseconds")
            runs.append({"uuid": uuid.uuid4().hex, "started_at": started,
                         "finished_at": started, "status": "finished",
                         "question": f"question {j}", "max_rounds": R, "n_rounds": R,
                         "total_tokens": 210 * R, "final_round": R - 1, "final_answer": "42",
                         "final_correct": int(rng.random() < 0.6), **meta})  # fmt: skip
        with store._write() as db:
            first = db.execute("SELECT coalesce(max(id), 0) + 1 FROM runs").fetchone()[0]
            cols = list(runs[0])
            db.conn.executemany(
                f"INSERT INTO runs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                [[r[c] for c in cols] for r in runs],
            )
            for off, run in enumerate(runs):
                rid = first + off
                for k in range(R):
                    text = pool[rng.randrange(len(pool))]
                    if k == 0 and rng.random() < 0.001:
                        text = f"{RARE} " + text
                    rec = sample_round(k, answer=str(40 + k % 3), correct=rng.random() < 0.6,
                                       response=text)  # fmt: skip
                    row = round_row(rid, rec)
                    row["created_at"] = run["started_at"]
                    rounds.append(row)
                    drow = decision_row(rid, sample_decision(k, stop=k == R - 1))
                    drow["created_at"] = run["started_at"]
                    decisions.append(drow)
            rounds_sql = (f"INSERT INTO rounds ({', '.join(rounds[0])}) "
                          f"VALUES ({', '.join('?' * len(rounds[0]))})")  # fmt: skip
            decisions_sql = (f"INSERT INTO decisions ({', '.join(decisions[0])}) "
                             f"VALUES ({', '.join('?' * len(decisions[0]))})")  # fmt: skip
            db.conn.executemany(rounds_sql, [list(r.values()) for r in rounds])
            db.conn.executemany(decisions_sql, [list(d.values()) for d in decisions])
    build_s = time.perf_counter() - t0
    n_rounds = store.db.execute("SELECT count(*) FROM rounds").fetchone()[0]
    print(f"bulk build (executemany, {batch} runs per transaction, not the live path): "
          f"{total:,} runs, {total * R:,} rounds in {build_s:.1f} s "
          f"({total * R / max(build_s, 1e-9):,.0f} rounds/s)")  # fmt: skip
    store.db.execute("PRAGMA optimize")
    size_mb = path.stat().st_size / 1e6
    print(f"database: {store.count_runs():,} runs, {n_rounds:,} rounds, {size_mb:,.0f} MB")

    # 3. Reads a user waits on (medians of 7).
    filt = {"model": MODELS[2], "problem_set": "gsm8k", "correct": True}
    hits = len(store.search(RARE, limit=100))
    middle = store.count_runs() // 2
    for label, fn in [
        ("list newest 100 runs", lambda: store.list_runs(limit=100)),
        ("list page 51 (offset 5000)", lambda: store.list_runs(limit=100, offset=5000)),
        ("filtered list (model+set+correct)", lambda: store.list_runs(limit=100, **filt)),
        ("count runs, same filter", lambda: store.count_runs(**filt)),
        (f"full-text search, rare word ({hits} hits)", lambda: store.search(RARE, limit=20)),
        ("full-text search, common words", lambda: store.search("farmer baskets", limit=20)),
        ("list runs matching a rare word", lambda: store.list_runs(search=RARE, limit=100)),
        ("get one run with its rounds", lambda: store.get_run(middle)),
    ]:
        print(f"{label + ':':44s} {median_ms(fn):8.2f} ms")

    # 4. Streaming one scope's labelled rounds, as the fitter reads them.
    scope = {"model": MODELS[0], "problem_set": "builtin", "strategy": "reanswer"}
    rates = []
    count = 0
    for _ in range(3):
        t = time.perf_counter()
        count = sum(1 for _ in store.labelled_rounds(**scope))
        rates.append(count / (time.perf_counter() - t))
    print(f"stream labelled rounds of one scope:  {count:,} rounds, "
          f"{statistics.median(rates):,.0f} rounds/s")  # fmt: skip
    t = time.perf_counter()
    scopes = store.scopes()
    print(f"scopes() over all rounds:            {(time.perf_counter() - t) * 1000:8.1f} ms "
          f"({len(scopes)} scopes)")  # fmt: skip
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {rss:,.0f} MB (includes the bulk builder's batches of {batch} runs)")
    store.close()
    tmp.cleanup()


if __name__ == "__main__":
    main()
