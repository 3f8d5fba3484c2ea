"""`mstui eval`: offline evaluation of the stopping policies over a stored pool (DESIGN §1.6)."""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path
from typing import Any, TextIO

from mstui.cli.common import db_path, dumps, open_existing_store, output_file

DEFAULT_POLICIES = "none,fixed,repeat,gate,markov,mixture,oracle"
DEFAULT_KAPPAS = (0.0, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3)
MIN_EVAL_QUESTIONS = 2  # a split into training and test questions needs one of each


def register(sub: Any) -> None:
    """Add `mstui eval` to the subcommands."""
    from mstui.cli.common import add_scope_filters
    from mstui.cli.parser import add_db_option, ranged

    p = sub.add_parser(
        "eval", help="replay every stopping policy over stored runs: accuracy vs tokens",
        description="Offline evaluation (DESIGN §1.6). Takes the stored runs that went to their "
                    "cap under the fixed policy (a pool), fits the chain on one part of the "
                    "questions and scores each policy by truncation on the other part: accuracy "
                    "(95% interval) and mean tokens per question, beside the dataset bounds.")
    add_db_option(p)
    add_scope_filters(p)
    p.add_argument("--max-rounds", type=ranged(int, 1, 1000), metavar="N",
                   help="use the pool of runs capped at N rounds (default: the cap with the "
                        "most runs)")
    p.add_argument("--policies", default=DEFAULT_POLICIES, metavar="LIST",
                   help="comma-separated: none, fixed (every fixed:N), repeat, gate, markov (the "
                        "κ sweep, single chain), mixture (the mixture of chains fitted on the "
                        "training questions), oracle, or exact specs such as fixed:2, "
                        "markov:0.001, mixture:0.001, "
                        f"gate:gamma=0.9 (default {DEFAULT_POLICIES})")
    p.add_argument("--kappas", metavar="LIST",
                   help="prices κ for the markov sweep, comma-separated (default "
                        f"{','.join(f'{k:g}' for k in DEFAULT_KAPPAS)})")
    p.add_argument("--test-fraction", type=ranged(float, 0.0, 1.0, lo_open=True, hi_open=True),
                   default=0.5, metavar="F",
                   help="share of questions held out for scoring (default 0.5)")
    p.add_argument("--seed", type=ranged(int, 0, 2**32 - 1),
                   default=0, help="seed of the train/test split")
    p.add_argument("--sensitivity", type=ranged(int, 0, 100_000), default=30, metavar="DRAWS",
                   help="draws of (a, b, p̂0) from the fitted posteriors for the accuracy and "
                        "token band of the gate and markov rows (0 = off; default 30)")
    p.add_argument("--no-obs-model", action="store_true",
                   help="markov uses the chain alone (predict-only belief)")
    p.add_argument("--perturb", type=ranged(float, 0.0, 1.0, hi_open=True), metavar="DELTA",
                   help="also the band of accuracy and tokens of each gate/markov row when a, b "
                        "and p̂0 are each shifted by ±DELTA (min–max over the 2³ corners; "
                        "one-at-a-time shifts in --json)")
    p.add_argument("--learning-curve", action="store_true",
                   help="fit on growing random subsets of the training questions (10, 20, 40, "
                        "…, all) and report how often the held-out decisions differ from the "
                        "full fit's, and the size where that falls below 5%%")
    p.add_argument("--curve-repeats", type=ranged(int, 1, 1000), default=5, metavar="N",
                   help="seeded random subsets per learning-curve size (default 5)")
    p.add_argument("--by-level", action="store_true",
                   help="also the table per difficulty level of the held-out questions")
    p.add_argument("--fit-per-level", action="store_true",
                   help="with --by-level: fit each level on its own training questions "
                        "(default: one fit on all training questions)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--plot", metavar="FILE.svg",
                   help="also write an accuracy-vs-tokens plot (SVG; PNG needs matplotlib)")
    p.set_defaults(handler=cmd_eval)


def expand_policies(text: str, n_rounds: int) -> list[str]:
    """Policy names to specs; `fixed` → fixed:1..N−1 and `markov` → the κ sweep marker.

    Specs that cannot be scored on this pool are one-line errors here, before any table is
    printed: a price that is not a number, more fixed rounds than the pool holds."""
    specs: list[str] = []
    for raw in text.split(","):
        name = raw.strip().lower()
        if not name:
            continue
        if name == "fixed":
            specs += [f"fixed:{n}" for n in range(1, n_rounds)]
            continue
        head, _, arg = name.partition(":")
        if head in ("markov", "mixture") and arg:
            try:
                kappa = float(arg)
            except ValueError:
                kappa = math.nan
            if not (math.isfinite(kappa) and kappa >= 0):
                raise ValueError(f"--policies: {name!r}: the price κ after {head}: must be a "
                                 f"number ≥ 0, e.g. {head}:0.001")
        if head == "fixed" and arg.isdigit() and int(arg) > n_rounds - 1:
            raise ValueError(f"--policies: {name!r} asks for {int(arg)} refinement rounds but "
                             f"the pool has {n_rounds} rounds (fixed:0 to fixed:{n_rounds - 1})")
        specs.append(name)
    if not specs:
        raise ValueError("--policies is empty; name at least one policy")
    return list(dict.fromkeys(specs))


def parse_kappas(text: str | None) -> list[float]:
    """κ values from a comma list."""
    if text is None:
        return list(DEFAULT_KAPPAS)
    out = []
    for part in text.split(","):
        try:
            k = float(part)
        except ValueError:
            raise ValueError(f"--kappas: {part.strip()!r} is not a number") from None
        if k < 0 or not math.isfinite(k):
            raise ValueError(f"--kappas: κ must be 0 or more, got {part.strip()}")
        out.append(k)
    return out


@dataclasses.dataclass(frozen=True)
class Extras:
    """What beyond the main table a run of `mstui eval` asks for."""

    draws: int = 30
    delta: float | None = None
    curve: bool = False
    curve_repeats: int = 5
    by_level: bool = False
    fit_per_level: bool = False


def evaluate_scope(sp: Any, specs: list[str], kappas: list[float], *, test_fraction: float,
                   seed: int, draws: int, use_obs: bool,
                   extras: Extras | None = None) -> dict[str, Any]:
    """Fit on train questions, score every policy on the test questions of one stored pool."""
    import numpy as np

    from mstui.analysis.pools import split_by_problem
    from mstui.analysis.report import (
        by_level,
        fit_summary,
        fit_train,
        flagged_bounds,
        learning_curve,
        refuse_sparse,
        score_table,
    )

    ex = dataclasses.replace(extras or Extras(), draws=draws)
    train_idx, test_idx = split_by_problem(sp.problems, test_fraction, seed)
    train, test = sp.pool.subset(train_idx), sp.pool.subset(test_idx)
    train_problems = [sp.problems[i] for i in train_idx]
    # Repeated runs of a question identify the spread of p0(q) (for the bounds).
    tf = fit_train(train, train_problems, use_obs)
    # The one sparse rule: a training fit whose rates are the prior does not drive markov/gate/
    # mixture, so their rows are left out of the table and the reason is reported instead.
    specs, refused = refuse_sparse(tf.fit, specs)
    rep: dict[str, Any] = {
        "max_rounds": sp.max_rounds,
        "n_train_questions": len(set(train_problems)),
        "n_test_questions": len({sp.problems[i] for i in test_idx}),
        "n_train_runs": int(train_idx.size),
        "n_test_runs": int(test_idx.size),
        "dropped_runs": sp.dropped,
        "other_caps": sp.other_caps,
        "fit": fit_summary(tf),
        "results": score_table(test, tf, specs, kappas, draws=ex.draws, delta=ex.delta),
        "bounds": flagged_bounds(test, tf.fit),
        "mean_tokens_per_round": float(np.mean(test.tokens)),
        "perturb": ex.delta,
        "refused": refused,
    }
    if ex.curve:
        rep["learning_curve"] = learning_curve(train, train_problems, test, tf, specs, kappas,
                                               use_obs=use_obs, repeats=ex.curve_repeats,
                                               seed=seed)
    if ex.by_level:
        levels = sp.levels if len(sp.levels) else np.full(len(sp.problems), -1, np.int64)
        rep["by_level"] = by_level(sp.pool, sp.problems, levels, train_idx, test_idx, tf, specs,
                                   kappas, draws=ex.draws, delta=ex.delta,
                                   per_level=ex.fit_per_level, use_obs=use_obs)
    return rep


def extras_from_args(args: argparse.Namespace) -> Extras:
    """Check and collect the options beyond the main table."""
    delta = getattr(args, "perturb", None)
    if delta is not None and not (math.isfinite(delta) and 0.0 <= delta < 1.0):
        raise ValueError(f"--perturb must be a number in [0, 1) (got {delta})")
    repeats = getattr(args, "curve_repeats", 5)
    if repeats < 1:
        raise ValueError(f"--curve-repeats must be at least 1 (got {repeats})")
    if getattr(args, "fit_per_level", False) and not getattr(args, "by_level", False):
        raise ValueError("--fit-per-level needs --by-level")
    return Extras(args.sensitivity, delta, getattr(args, "learning_curve", False), repeats,
                  getattr(args, "by_level", False), getattr(args, "fit_per_level", False))


def cmd_eval(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Evaluate every matching scope that has a pool."""
    out = out or sys.stdout
    from mstui.analysis.plot import write_plot
    from mstui.analysis.pools import load_pool
    from mstui.analysis.text import print_report

    if not 0.0 < args.test_fraction < 1.0:
        raise ValueError(f"--test-fraction must be between 0 and 1 (got {args.test_fraction})")
    if args.max_rounds is not None and args.max_rounds < 2:
        raise ValueError("--max-rounds must be at least 2 for an evaluation pool")
    if args.plot and Path(args.plot).suffix.lower() not in (".svg", ".png"):
        raise ValueError("--plot writes .svg (or .png with matplotlib installed)")
    if args.plot is not None:
        output_file(args.plot, "--plot", protect=db_path(args.db))
        if Path(args.plot).suffix.lower() == ".png":
            import importlib.util

            # Said before the table is computed and printed, not after.
            if importlib.util.find_spec("matplotlib") is None:
                raise ValueError("a PNG plot needs matplotlib (pip install matplotlib); or ask "
                                 "for an .svg file")
    kappas = parse_kappas(args.kappas)
    extras = extras_from_args(args)
    reports: list[dict[str, Any]] = []
    with open_existing_store(args.db) as store:
        scopes = [s for s in store.scopes()
                  if (args.model is None or s["model"] == args.model)
                  and (args.problem_set is None or s["problem_set"] == args.problem_set)
                  and (args.strategy is None or s["strategy"] == args.strategy)]
        if not scopes:
            raise ValueError(f"no labelled runs in {store.path} match the filters; run "
                             "`mstui sweep --policy fixed` on a problem set with gold answers")
        skipped: list[dict[str, Any]] = []
        for s in scopes:
            scope = {k: s[k] for k in ("model", "problem_set", "strategy")}
            if None in scope.values():
                # No way to select exactly these runs (see `mstui fit`).
                skipped.append({"scope": scope, "reason": "runs without a model, problem set "
                                "or strategy cannot be selected"})
                continue
            sp = load_pool(store, model=s["model"], problem_set=s["problem_set"],
                           strategy=s["strategy"], max_rounds=args.max_rounds)
            if sp is None:
                skipped.append({"scope": scope, "reason": "no pool: no finished fixed run that "
                                "went to its cap" + (f" of {args.max_rounds} rounds"
                                                     if args.max_rounds else "")})
                continue
            n_q = len(set(sp.problems))
            if n_q < MIN_EVAL_QUESTIONS:
                # A stray `mstui run` makes a scope of one question; it cannot be split into
                # training and test questions, and must not stop the others being evaluated.
                skipped.append({"scope": scope, "reason": f"{n_q} distinct question(s); "
                                f"fitting and scoring on disjoint questions needs at least "
                                f"{MIN_EVAL_QUESTIONS}"})
                continue
            specs = expand_policies(args.policies, sp.max_rounds)
            rep = evaluate_scope(sp, specs, kappas, test_fraction=args.test_fraction,
                                 seed=args.seed, draws=args.sensitivity,
                                 use_obs=not args.no_obs_model, extras=extras)
            rep["scope"] = scope
            reports.append(rep)
    if not reports:
        cap = f" capped at {args.max_rounds} rounds" if args.max_rounds else ""
        why = "; ".join(f"{sk['scope']['problem_set']}: {sk['reason']}" for sk in skipped[:4])
        raise ValueError(f"no pool{cap} to evaluate ({why}): evaluation needs finished runs "
                         "that went to their cap with the fixed policy; run `mstui sweep "
                         "--policy fixed --max-rounds 6`")
    if args.json:
        print(dumps({"scopes": reports, "skipped": skipped}), file=out)
    else:
        for rep in reports:
            print_report(rep, out)
        for sk in skipped:
            s = sk["scope"]
            print(f"skipped {s['model']} · {s['problem_set']} · {s['strategy']}: {sk['reason']}",
                  file=out)
    if args.plot:
        write_plot(reports[0], Path(args.plot))
        if not args.json:
            print(f"\nplot written to {args.plot}", file=out)
    return 0


