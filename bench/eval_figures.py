"""Every figure of docs/evaluation.md from one command, on several split seeds with the spread.

    python bench/eval_figures.py [--db traces.db] [--seeds 10]

Reads the pool (read-only), fits on all questions (chain, checks, mixture), then for each split
seed fits on half the questions and scores the policies on the other half. κ for `markov` is
chosen on the training questions (the most accurate κ of the grid there, ties to fewer tokens),
never on the test table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mstui.analysis.pools import load_labelled, load_pool, split_by_problem
from mstui.cli.common import open_existing_store
from mstui.core.evaluation import bounds, score, stop_rounds
from mstui.core.fitting import fit_checks, fit_pool
from mstui.core.mixture import first_order_under, fit_mixture
from mstui.core.policies import (
    FixedPolicy,
    MarkovPolicy,
    MixturePolicy,
    NonePolicy,
    OraclePolicy,
    RepeatPolicy,
)

KAPPAS = (0.0, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3)


def spread(values: list[float]) -> str:
    """mean [min, max] over seeds."""
    return f"{statistics.mean(values):.3f} [{min(values):.3f}, {max(values):.3f}]"


def main() -> None:
    """Print the figures."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--db", default="traces.db")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--model", default="SmolLM2-135M-Instruct.Q4_1.gguf")
    p.add_argument("--problem-set", default="gen")
    p.add_argument("--strategy", default="reanswer")
    args = p.parse_args()
    with open_existing_store(args.db) as store:
        scope = {"model": args.model, "problem_set": args.problem_set, "strategy": args.strategy}
        sp = load_pool(store, **scope)
        data = load_labelled(store, **scope)
    if sp is None:
        raise SystemExit("no pool in this scope")
    pool = sp.pool
    print(f"pool: {pool.n_questions} questions x {pool.n_rounds} rounds")
    fit = fit_pool(pool.correct)
    print(f"fit (all): a={fit.a:.3f} b={fit.b:.3f} p0={fit.p0:.3f} pi={fit.pi:.3f}")
    for c in fit_checks(data.run, data.round, data.correct, fit):
        print(f"  check {c.name}: statistic {c.statistic:.2f}, p = {c.p_value:.3g}")
    mix = fit_mixture(pool.correct)
    print(f"mixture (all): K={mix.k}, held-out log-lik per question by K: "
          + ", ".join(f"{v:.4f}" for v in mix.heldout))
    for k in range(mix.k):
        print(f"  class {k}: w={mix.w[k]:.3f} a={mix.a[k]:.3f} b={mix.b[k]:.3f} "
              f"p0={mix.p0[k]:.3f}")
    single = fit_mixture(pool.correct, classes=1)
    print(f"  first-order check, bootstrap p under the single chain "
          f"{first_order_under(single, pool.correct, draws=499):.3f}, under the mixture "
          f"{first_order_under(mix, pool.correct, draws=499):.3f} (499 draws)")
    rows: dict[str, dict[str, list[float]]] = {}

    def add(name: str, key: str, value: float) -> None:
        rows.setdefault(name, {}).setdefault(key, []).append(value)

    cap = pool.n_rounds
    for seed in range(args.seeds):
        tr, te = split_by_problem(sp.problems, 0.5, seed)
        train, test = pool.subset(tr), pool.subset(te)
        f = fit_pool(train.correct)
        om = train.fit_obs_model(f)
        m = fit_mixture(train.correct, seed=seed)
        # κ chosen on the training questions only.
        best = max(KAPPAS, key=lambda k: (
            score(train, stop_rounds(train, MarkovPolicy(f, om, k)), "m").accuracy,
            -score(train, stop_rounds(train, MarkovPolicy(f, om, k)), "m").mean_tokens))
        pols = {"none": NonePolicy(), f"fixed:{cap - 1}": FixedPolicy(cap - 1),
                "repeat": RepeatPolicy(), "markov (k=0)": MarkovPolicy(f, om),
                "markov (k from train)": MarkovPolicy(f, om, best),
                "mixture (k=0)": MixturePolicy(m, om), "oracle": OraclePolicy()}
        for name, pol in pols.items():
            k = stop_rounds(test, pol)
            r = score(test, k, name)
            add(name, "accuracy", r.accuracy)
            add(name, "tokens", r.mean_tokens)
            add(name, "refined", float(np.mean(k > 0)))
            add(name, "extra rounds", float(np.mean(k)))
        add("mixture (k=0)", "K", float(m.k))
        b = bounds(test, f)
        add("bounds", "neutral (model)", b["neutral"])
        add("bounds", "upper (model)", b["upper"])
        add("bounds", "none observed", b["neutral_observed"])
        add("markov (k from train)", "kappa", best)
    print(f"\nheld-out, {args.seeds} split seeds (mean [min, max]):")
    for name, cols in rows.items():
        print(f"  {name:24s} " + " · ".join(f"{key} {spread(v)}" for key, v in cols.items()))


if __name__ == "__main__":
    main()
