"""`mstui fit`: fit the chain of every scope from stored labelled rounds, store and print it."""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from mstui.cli.common import dumps, fmt_interval, open_existing_store


def register(sub: Any) -> None:
    """Add `mstui fit` to the subcommands."""
    from mstui.cli.common import add_scope_filters
    from mstui.cli.parser import add_db_option, ranged

    p = sub.add_parser(
        "fit", help="fit the Markov chain of every scope from stored, labelled rounds",
        description="For every scope (model × problem set × strategy, optionally × level) with "
                    "labelled rounds in the trace database: count transitions, fit a and b with "
                    "95% intervals, p̂0, the fit checks and the observation model, store the "
                    "fit, and print it. Runs of `mstui run`/`sweep` with policy markov, gate or "
                    "mixture use the newest fresh fit of their model, strategy and problem set "
                    "when it rests on data, else the fit of that model and strategy with the "
                    "most transitions (per-level fits are never chosen); `--fit ID` pins one.")
    add_db_option(p)
    add_scope_filters(p)
    p.add_argument("--by-level", action="store_true",
                   help="also fit each difficulty level of a scope on its own")
    p.add_argument("--min-transitions", type=ranged(int, 0, 10**9), default=10, metavar="N",
                   help="scopes with fewer transitions are reported, not fitted (default 10)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(handler=cmd_fit)


def _scope_report(sf: Any, fit_id: int) -> dict[str, Any]:
    f = sf.fit
    return {
        "scope": sf.scope, "fit_id": fit_id, "status": "fitted",
        "a": {"mean": f.a, "lo": f.a_lo, "hi": f.a_hi},
        "b": {"mean": f.b, "lo": f.b_lo, "hi": f.b_hi},
        "pi": {"mean": f.pi, "lo": sf.pi_interval[0], "hi": sf.pi_interval[1]},
        "lam": {"mean": f.lam, "lo": sf.lam_interval[0], "hi": sf.lam_interval[1]},
        "p0": {"mean": f.p0, "lo": f.p0_lo, "hi": f.p0_hi},
        "p0_spread": None if f.p0_alpha is None else {"alpha": f.p0_alpha, "beta": f.p0_beta},
        "counts": {"n_cc": f.n_cc, "n_cw": f.n_cw, "n_wc": f.n_wc, "n_ww": f.n_ww,
                   "n_rounds": f.n_rounds, "n_runs": sf.n_runs, "n_problems": sf.n_problems},
        "flags": list(f.flags),
        # The one sparse rule (core): which rates are the prior; markov and gate refuse them.
        "sparse": {"rates": list(f.sparse_rows), "reason": f.sparse_reason()},
        "mixture": f.mixture,
        "checks": {k: {kk: vv for kk, vv in v.items() if kk != "details"}
                   | ({"rounds": v["details"]["rounds"]} if k == "accuracy-by-round" else {})
                   for k, v in sf.checks_dict().items()},
        "observation_model": sf.calibration,
    }


def _print_scope(r: dict[str, Any], out: TextIO) -> None:
    s = r["scope"]
    head = f"{s['model']} · {s['problem_set']} · {s['strategy']}"
    if s.get("level") is not None:
        head += f" · level {s['level']}"
    c = r["counts"]
    print(f"\n{head}  (fit #{r['fit_id']})", file=out)
    print(f"  {c['n_runs']} runs · {c['n_problems']} questions · {c['n_rounds']} labelled rounds"
          f" · transitions CC {c['n_cc']}  CW {c['n_cw']}  WC {c['n_wc']}  WW {c['n_ww']}",
          file=out)
    rows = (("a ", "a", "corruption P(right → wrong)"), ("b ", "b", "repair P(wrong → right)"),
            ("π ", "pi", "stationary accuracy b/(a+b)"), ("λ ", "lam", "1 − a − b"),
            ("p̂0", "p0", "first-round accuracy"))
    for label, key, what in rows:
        v = r[key]
        print(f"  {label} = {fmt_interval(v['mean'], v['lo'], v['hi'])}   {what}", file=out)
    pi, p0 = r["pi"]["mean"], r["p0"]["mean"]
    sparse = r["sparse"]["rates"]
    regime = "beneficial" if p0 < pi else "detrimental" if p0 > pi else "neutral"
    # π rests on a and b: when either is (mostly) the prior, so is this verdict.
    caveat = (f" ⚠ rests on the prior: {' and '.join(sparse)} "
              f"{'is' if len(sparse) == 1 else 'are'} (mostly) the prior, so π is too; not a "
              "finding" if sparse else "")
    print(f"  regime: {regime} on average (p̂0 {'<' if p0 < pi else '≥'} π){caveat}", file=out)
    for name, chk in r["checks"].items():
        if not chk["testable"]:
            print(f"  check {name}: {chk['verdict']}", file=out)
            continue
        print(f"  check {name}: statistic {chk['statistic']:.2f}, df {chk['df']}, "
              f"{chk['p_text']} — {chk['verdict']}", file=out)
    cal = r["observation_model"]
    if "filtered_ece" in cal:
        print(f"  observation model: calibration error (ECE, in-sample) "
              f"{cal['filtered_ece']:.3f} filtered vs {cal['chain_only_ece']:.3f} chain only; "
              f"Brier {cal['filtered_brier']:.3f} vs {cal['chain_only_brier']:.3f} "
              f"(lower = more informative; temper {cal['temper']:.2f})", file=out)
    if r["flags"]:
        print(f"  flags: {', '.join(r['flags'])}", file=out)
    mix = r.get("mixture")
    if mix:
        _print_mixture(mix, bool(sparse), out)
    if r["sparse"]["reason"]:
        print(f"  warning: {r['sparse']['reason']}; markov and gate refuse this fit "
              "(--allow-sparse-fit insists)", file=out)


def _print_mixture(mix: dict[str, Any], sparse: bool, out: TextIO) -> None:
    """The mixture of chains: classes, the held-out likelihood of every K tried, and what
    markov does with it (which it cannot do when the fit is refused)."""
    k = len(mix["w"])
    ho = mix.get("heldout") or []
    line = f"  mixture of chains: {k} class(es) on held-out likelihood"
    if len(ho) > 1:
        tried = ", ".join(f"K={i + 1} {v:.4f}" for i, v in enumerate(ho))
        line += f" (per question: {tried})"
    print(line, file=out)
    for i, (w, a, b, p0) in enumerate(zip(mix["w"], mix["a"], mix["b"], mix["p0"],
                                          strict=True)):
        print(f"    class {i}: weight {w:.3f} · a {a:.3f} · b {b:.3f} · p0 {p0:.3f}", file=out)
    # Why a one-class mixture is not the chain above: EM estimates, not posterior means.
    print("    (EM estimates with a 0.5 pseudo-count per rate; the chain above is the Beta(1, 1) "
          "posterior mean, so on few transitions the two differ)", file=out)
    if mix.get("first_order_p") is not None:
        print(f"    first-order check under the mixture: p = {mix['first_order_p']:.3g} "
              f"(bootstrap, {mix['first_order_draws']} draws)", file=out)
    model = "the mixture" if k > 1 else "the single chain (one class won)"
    use = (f"markov would use {model}, but refuses this fit (sparse, see the warning)" if sparse
           else f"markov uses {model}")
    print(f"    {use}", file=out)


def cmd_fit(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Fit every (filtered) scope; exit 2 when nothing could be fitted."""
    out = out or sys.stdout
    from mstui.analysis.pools import fit_labelled, load_labelled, too_little_data, transitions

    store = open_existing_store(args.db, readonly=False)  # saves the fits it makes
    try:
        scopes = store.scopes()
        if not scopes:
            raise ValueError(f"no labelled rounds in {store.path}: run `mstui sweep` on a problem "
                             "set with gold answers first")
        chosen = [s for s in scopes
                  if (args.model is None or s["model"] == args.model)
                  and (args.problem_set is None or s["problem_set"] == args.problem_set)
                  and (args.strategy is None or s["strategy"] == args.strategy)]
        if not chosen:
            known = "; ".join(f"{s['model']} · {s['problem_set']} · {s['strategy']}"
                              for s in scopes[:8])
            raise ValueError(f"no scope matches the filters; scopes with labelled rounds: {known}")
        fitted: list[dict[str, Any]] = []
        skipped: list[dict[str, Any]] = []
        for s in chosen:
            base = {"model": s["model"], "problem_set": s["problem_set"],
                    "strategy": s["strategy"], "level": None}
            if None in (s["model"], s["problem_set"], s["strategy"]):
                # Runs without a model/set/strategy (imported from elsewhere) cannot be told
                # apart from the rest by the store's filters; they are not fitted.
                skipped.append({"scope": base, "status": "incomplete-scope", "transitions": 0,
                                "labelled_rounds": int(s["n_rounds"]),
                                "needed": args.min_transitions})
                continue
            data = load_labelled(store, model=s["model"], problem_set=s["problem_set"],
                                 strategy=s["strategy"])
            parts: list[tuple[dict[str, Any], Any]] = [(base, data)]
            if args.by_level:
                parts += [({**base, "level": lv}, data.select(data.level == lv))
                          for lv in data.levels()]
            for scope, part in parts:
                if too_little_data(part, args.min_transitions):
                    skipped.append({"scope": scope, "status": "too-little-data",
                                    "transitions": transitions(part),
                                    "labelled_rounds": len(part),
                                    "needed": args.min_transitions})
                    continue
                sf = fit_labelled(part, scope)
                fit_id = store.save_fit(scope, sf.stored())
                fitted.append(_scope_report(sf, fit_id))
    finally:
        store.close()
    if args.json:
        print(dumps({"db": str(store.path), "fits": fitted, "too_little_data": skipped}), file=out)
    else:
        print(f"fitted {len(fitted)} scope(s) from {store.path}", file=out)
        for r in fitted:
            _print_scope(r, out)
        for sk in skipped:
            s = sk["scope"]
            lvl = f" · level {s['level']}" if s.get("level") is not None else ""
            print(f"\ntoo little data: {s['model']} · {s['problem_set']} · {s['strategy']}{lvl}"
                  f" — {sk['transitions']} transitions in {sk['labelled_rounds']} labelled rounds"
                  f" (need {sk['needed']}); not fitted", file=out)
    if not fitted:
        raise ValueError("no scope had enough labelled data to fit (need "
                         f"{args.min_transitions} transitions; see --min-transitions); "
                         "sweep more problems with --max-rounds 2 or more")
    return 0
