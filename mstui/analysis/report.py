"""Pieces of `mstui eval` beyond the main table: posterior and ±δ bands, learning curve, per level.

Everything here works on `Pool` arrays and the vectorized core (no store, no printing). A
"decision row" is a gate or markov row of the table: its stop round per held-out question is
what the sensitivity band, the ±δ band and the learning curve compare.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mstui.core.belief import ObservationModel
from mstui.core.evaluation import (
    Pool,
    bounds,
    evaluate,
    markov_inputs,
    pareto_front,
    score,
    stop_rounds,
)
from mstui.core.fitting import ChainFit, fit_pool
from mstui.core.mixture import MixtureFit, fit_mixture
from mstui.core.policies import MarkovPolicy, MixturePolicy, parse_policy, sparse_refusal

I64 = NDArray[np.int64]
STABLE = 0.05  # the learning curve's "decisions stopped changing" threshold
EDGE = 1e-6  # perturbed a, b, p̂0 are clipped to [EDGE, 1 − EDGE]


@dataclasses.dataclass(frozen=True)
class TrainedFit:
    """The chain fit and observation model made on a set of training rows."""

    fit: ChainFit
    om: ObservationModel | None
    k0: int  # round-0 correct among the training rows (for the p̂0 posterior)
    n0: int  # training rows
    # The mixture of chains fitted on the same training questions (the "mixture" row); the
    # "markov" rows stay the single chain so the two are compared side by side.
    mix: MixtureFit | None = None


def fit_train(train: Pool, problems: list[str], use_obs: bool) -> TrainedFit:
    """Fit the chain (p0 spread from repeated questions) and observation model on `train`."""
    from mstui.analysis.pools import LabelledArrays, with_p0_spread

    fit = fit_pool(train.correct, scope="train")
    om = train.fit_obs_model(fit) if use_obs else None
    codes = np.unique(np.asarray(problems, dtype=str), return_inverse=True)[1].ravel()
    n = codes.size
    zeros = np.zeros(n, np.int64)
    data = LabelledArrays(np.arange(n, dtype=np.int64), codes.astype(np.int64), zeros,
                          np.asarray(train.correct[:, 0], np.bool_), np.ones(n, np.bool_),
                          zeros - 1, np.full(n, np.nan), np.full(n, np.nan), zeros - 1)
    fit = with_p0_spread(fit, data)
    mix = fit_mixture(train.correct) if train.n_questions >= 2 else None
    return TrainedFit(fit, om, int(train.correct[:, 0].sum()), train.n_questions, mix)


def markov_stop_sweep(test: Pool, fit: ChainFit, om: ObservationModel | None,
                      kappas: list[float]) -> list[I64]:
    """Stop rounds of markov at each κ with the belief computed once, as the core's `sweep`."""
    if not kappas:
        return []
    gain, cost = markov_inputs(test, MarkovPolicy(fit, om))
    out = []
    for kappa in kappas:
        stop = ~(gain > kappa * cost)
        stop[:, -1] = True  # the cap
        out.append(np.argmax(stop, axis=1).astype(np.int64))
    return out


def decision_rows(test: Pool, fit: ChainFit, om: ObservationModel | None, specs: list[str],
                  kappas: list[float]) -> dict[str, I64]:
    """Stop round per test question of every gate/markov row, keyed by the row's name."""
    out: dict[str, I64] = {}
    if "markov" in specs:
        for kappa, k in zip(kappas, markov_stop_sweep(test, fit, om, kappas), strict=True):
            out[f"markov:{kappa:g}"] = k
    for spec in specs:
        if spec.startswith(("gate", "markov:")):
            pol = parse_policy(spec, fit, om, allow_sparse=True)  # offline: see evaluate_scope
            out[pol.spec] = stop_rounds(test, pol)
    return out


def _scores(test: Pool, ks: dict[str, I64]) -> dict[str, tuple[float, float]]:
    res = {name: score(test, k, name) for name, k in ks.items()}
    return {name: (r.accuracy, r.mean_tokens) for name, r in res.items()}


def _shifted(fit: ChainFit, da: float, db: float, dp0: float) -> ChainFit:
    def clip(v: float) -> float:
        return float(min(max(v, EDGE), 1.0 - EDGE))

    return dataclasses.replace(fit, a=clip(fit.a + da), b=clip(fit.b + db), p0=clip(fit.p0 + dp0))


def posterior_band(test: Pool, tf: TrainedFit, specs: list[str], kappas: list[float],
                   draws: int, seed: int = 12345) -> dict[str, dict[str, list[float]]]:
    """5–95% band of each decision row's accuracy and tokens over posterior draws of (a, b, p̂0)."""
    rng = np.random.default_rng(seed)
    fit, al, be = tf.fit, tf.fit.prior_alpha, tf.fit.prior_beta
    acc: dict[str, list[float]] = {}
    tok: dict[str, list[float]] = {}
    for _ in range(draws):
        f = dataclasses.replace(fit, a=float(rng.beta(fit.n_cw + al, fit.n_cc + be)),
                                b=float(rng.beta(fit.n_wc + al, fit.n_ww + be)),
                                p0=float(rng.beta(tf.k0 + al, tf.n0 - tf.k0 + be)))
        for name, (ac, tk) in _scores(test, decision_rows(test, f, tf.om, specs, kappas)).items():
            acc.setdefault(name, []).append(ac)
            tok.setdefault(name, []).append(tk)
    return {k: {"accuracy": [float(np.percentile(v, 5)), float(np.percentile(v, 95))],
                "tokens": [float(np.percentile(tok[k], 5)), float(np.percentile(tok[k], 95))]}
            for k, v in acc.items()}


def perturbation(test: Pool, tf: TrainedFit, specs: list[str], kappas: list[float],
                 delta: float) -> dict[str, dict[str, Any]]:
    """Decision rows re-scored with a, b, p̂0 shifted by ±δ: 2³ corners and one at a time."""
    # The band is min–max over the corners; the one-at-a-time shifts say which parameter matters.
    # Shifted values are clipped into [EDGE, 1 − EDGE]; the observation model is kept as fitted.
    corners: dict[str, list[dict[str, Any]]] = {}
    for sa, sb, sp in itertools.product((-1, 1), repeat=3):
        f = _shifted(tf.fit, sa * delta, sb * delta, sp * delta)
        for name, (ac, tk) in _scores(test, decision_rows(test, f, tf.om, specs, kappas)).items():
            corners.setdefault(name, []).append(
                {"a": sa, "b": sb, "p0": sp, "accuracy": ac, "mean_tokens": tk})
    single: dict[str, dict[str, dict[str, list[float]]]] = {}
    for param, sign in itertools.product(("a", "b", "p0"), (-1, 1)):
        d = {p: (sign * delta if p == param else 0.0) for p in ("a", "b", "p0")}
        f = _shifted(tf.fit, d["a"], d["b"], d["p0"])
        for name, (ac, tk) in _scores(test, decision_rows(test, f, tf.om, specs, kappas)).items():
            slot = single.setdefault(name, {}).setdefault(param, {"accuracy": [], "tokens": []})
            slot["accuracy"].append(ac)  # [−δ, +δ]
            slot["tokens"].append(tk)
    out: dict[str, dict[str, Any]] = {}
    for name, cs in corners.items():
        accs, toks = [c["accuracy"] for c in cs], [c["mean_tokens"] for c in cs]
        out[name] = {"delta": delta, "accuracy": [min(accs), max(accs)],
                     "tokens": [min(toks), max(toks)], "corners": cs,
                     "one_at_a_time": single[name]}
    return out


def score_table(test: Pool, tf: TrainedFit, specs: list[str], kappas: list[float], *,
                draws: int, delta: float | None) -> list[dict[str, Any]]:
    """The table's rows: every policy scored on `test`, Pareto flags, bands where asked."""
    results = []
    for spec in specs:
        if spec == "markov":
            ks = markov_stop_sweep(test, tf.fit, tf.om, kappas)
            results += [score(test, k, f"markov:{kappa:g}", {"kappa": float(kappa)})
                        for kappa, k in zip(kappas, ks, strict=True)]
            continue
        if spec.startswith("mixture"):
            if tf.mix is not None:
                kappa = float(spec.partition(":")[2] or 0.0)  # checked by the caller
                res = evaluate(test, [MixturePolicy(tf.mix, tf.om, kappa, spec)])
                results += [dataclasses.replace(r, params={"classes": float(tf.mix.k)})
                            for r in res]
            continue
        results += evaluate(test, [parse_policy(spec, tf.fit, tf.om, allow_sparse=True)])
    band = posterior_band(test, tf, specs, kappas, draws) if draws > 0 else {}
    shift = perturbation(test, tf, specs, kappas, delta) if delta is not None else {}
    front = {r.policy for r in pareto_front([r for r in results if r.policy != "oracle"])}
    rows = []
    for r in results:
        d = dataclasses.asdict(r)
        d["pareto"] = r.policy in front
        if r.policy in band:
            d["sensitivity"] = band[r.policy]
        if r.policy in shift:
            d["perturbation"] = shift[r.policy]
        rows.append(d)
    return rows


def fit_summary(tf: TrainedFit) -> dict[str, Any]:
    """The fit's numbers as reported, with which rates rest on (almost) no data: then π, λ and
    the bounds built on them are the prior's, and every surface says so."""
    f = tf.fit
    return {"a": f.a, "a_lo": f.a_lo, "a_hi": f.a_hi, "b": f.b, "b_lo": f.b_lo, "b_hi": f.b_hi,
            "p0": f.p0, "pi": f.pi, "lam": f.lam, "obs_model": tf.om is not None,
            "sparse": {"rates": list(f.sparse_rows), "reason": f.sparse_reason()}}


def refuse_sparse(fit: ChainFit, specs: list[str]) -> tuple[list[str], dict[str, Any] | None]:
    """The specs that may be scored on `fit`, and what was refused and why (None when nothing
    was): the one sparse rule (core.policies.sparse_refusal), for the whole table and for each
    per-level fit alike."""
    refused = [s for s in specs if sparse_refusal(s, fit)]
    kept = [s for s in specs if s not in refused]
    return kept, ({"policies": refused, "reason": fit.sparse_reason()} if refused else None)


def flagged_bounds(test: Pool, fit: ChainFit) -> dict[str, Any]:
    """The dataset bounds, marked when π (and so the upper and lower bound) rests on a sparse
    fit, i.e. mostly on the prior."""
    return {**bounds(test, fit), "from_sparse_fit": bool(fit.sparse_rows)}


def curve_sizes(n: int, start: int = 10) -> list[int]:
    """10, 20, 40, … below n, then n itself."""
    sizes, s = [], start
    while s < n:
        sizes.append(s)
        s *= 2
    return [*sizes, n]


def learning_curve(train: Pool, problems: list[str], test: Pool, full: TrainedFit,
                   specs: list[str], kappas: list[float], *, use_obs: bool, repeats: int,
                   seed: int) -> dict[str, Any]:
    """Share of test rows whose gate/markov stop round differs from the full fit's, by size."""
    # Subsets of 10, 20, 40, … training questions (all runs of each), `repeats` seeded draws per
    # size; the last size is the full training set itself, the reference (disagreement 0).
    # Large subsets share most questions with the full set, so their disagreement is optimistic.
    full_k = decision_rows(test, full.fit, full.om, specs, kappas)
    uniq, inv = np.unique(np.asarray(problems, dtype=str), return_inverse=True)
    inv = inv.ravel()
    n = int(uniq.size)
    head = {"train_questions": n, "test_rows": test.n_questions, "repeats": repeats,
            "threshold": STABLE}
    if not full_k:
        return {**head, "stable_at": None, "sizes": [],
                "note": "no gate or markov row to compare (add them to --policies)"}
    rng = np.random.default_rng(seed)
    sizes: list[dict[str, Any]] = []
    for size in curve_sizes(n):
        reps = 1 if size == n else repeats  # every subset of all questions is the full set
        dis: dict[str, list[float]] = {k: [] for k in full_k}
        acc: dict[str, list[float]] = {k: [] for k in full_k}
        tok: dict[str, list[float]] = {k: [] for k in full_k}
        for _ in range(reps):
            chosen = np.sort(rng.choice(n, size, replace=False))
            rows = np.nonzero(np.isin(inv, chosen))[0]
            tf = fit_train(train.subset(rows), [problems[i] for i in rows], use_obs)
            ks = decision_rows(test, tf.fit, tf.om, specs, kappas)
            for name, (ac, tk) in _scores(test, ks).items():
                dis[name].append(float(np.mean(ks[name] != full_k[name])))
                acc[name].append(ac)
                tok[name].append(tk)
        mean_dis = {k: float(np.mean(v)) for k, v in dis.items()}
        worst = max(mean_dis, key=lambda k: mean_dis[k])
        sizes.append({
            "questions": size, "fits": reps, "disagreement": mean_dis,
            "disagreement_mean": float(np.mean(list(mean_dis.values()))),
            "disagreement_worst": mean_dis[worst], "worst_row": worst,
            "accuracy": {k: float(np.mean(v)) for k, v in acc.items()},
            "mean_tokens": {k: float(np.mean(v)) for k, v in tok.items()},
        })
    # The full set is the reference (0 by construction): only proper subsets can show stability.
    stable = None
    proper = sizes[:-1]
    for i, s in enumerate(proper):
        if all(t["disagreement_worst"] < STABLE for t in proper[i:]):
            stable = s["questions"]
            break
    return {**head, "stable_at": stable, "sizes": sizes}


def by_level(pool: Pool, problems: list[str], levels: I64, train_idx: I64, test_idx: I64,
             full: TrainedFit, specs: list[str], kappas: list[float], *, draws: int,
             delta: float | None, per_level: bool, use_obs: bool) -> list[dict[str, Any]]:
    """The table per level of the test questions (−1 = unknown), fitted on all or per level."""
    out = []
    for lv in sorted((int(v) for v in np.unique(levels[test_idx])), key=lambda v: (v < 0, v)):
        t_rows = test_idx[levels[test_idx] == lv]
        tr_rows = train_idx[levels[train_idx] == lv] if per_level else train_idx
        entry: dict[str, Any] = {
            "level": None if lv < 0 else lv,
            "n_test_questions": len({problems[i] for i in t_rows}),
            "n_test_runs": int(t_rows.size),
            "n_train_questions": len({problems[i] for i in tr_rows}),
            "fit_scope": "level" if per_level else "all levels",
        }
        if tr_rows.size == 0:
            entry.update(results=[], note="no training questions at this level to fit on")
            out.append(entry)
            continue
        tf = full
        level_specs = specs
        if per_level:
            tf = fit_train(pool.subset(tr_rows), [problems[i] for i in tr_rows], use_obs)
            # A level's own fit may rest on a handful of transitions: the same refusal as the
            # whole table's (the full fit's refusals are already out of `specs`).
            level_specs, entry["refused"] = refuse_sparse(tf.fit, specs)
        test = pool.subset(t_rows)
        entry["fit"] = fit_summary(tf)
        entry["results"] = score_table(test, tf, level_specs, kappas, draws=draws, delta=delta)
        entry["bounds"] = flagged_bounds(test, tf.fit)
        out.append(entry)
    return out
