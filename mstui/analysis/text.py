"""Text report of `mstui eval`: table, bounds, ±δ bands, learning curve, per-level tables."""

from __future__ import annotations

from typing import Any, TextIO

from mstui.analysis.plot import terminal_plot


def print_report(rep: dict[str, Any], out: TextIO) -> None:
    """The table of one scope, then its bounds, the extras asked for and a small terminal plot."""
    s, f = rep["scope"], rep["fit"]
    print(f"\n{s['model']} · {s['problem_set']} · {s['strategy']} · pool of runs to "
          f"{rep['max_rounds']} rounds", file=out)
    print(f"fit on {rep['n_train_questions']} questions ({rep['n_train_runs']} runs), scored on "
          f"{rep['n_test_questions']} others ({rep['n_test_runs']} runs): a={f['a']:.3f} "
          f"b={f['b']:.3f} p̂0={f['p0']:.3f} π={f['pi']:.3f} λ={f['lam']:.3f}"
          + ("" if f["obs_model"] else " · markov predict-only") + _sparse_mark(f), file=out)
    print_rows(rep["results"], out, rep.get("perturb"))
    _print_refused(rep.get("refused"), out)
    b = rep["bounds"]
    print(f"\n  bounds: neutral {b['neutral']:.3f} (observed {b['neutral_observed']:.3f}) · "
          f"upper {b['upper']:.3f} · lower {b['lower']:.3f} · oracle observed "
          f"{b['oracle_observed']:.3f} — {b['note']}{_bounds_mark(b)}", file=out)
    print("  * on the Pareto front (no other policy but the oracle is as accurate for fewer "
          "tokens)", file=out)
    if rep.get("perturb") is not None:
        print(f"  ±δ: min–max over the 2³ corners of a, b, p̂0 each shifted by "
              f"±{rep['perturb']:g} (clipped into (0, 1)); one-at-a-time shifts in --json",
              file=out)
    if rep["dropped_runs"]:
        print(f"  {rep['dropped_runs']} run(s) at the cap left out (a round unlabelled or "
              "cancelled)", file=out)
    if rep["other_caps"]:
        caps = ", ".join(f"{n} rounds ({c} runs)" for n, c in sorted(rep["other_caps"].items()))
        print(f"  other pools: {caps}; pick one with --max-rounds", file=out)
    if "learning_curve" in rep:
        print_curve(rep["learning_curve"], out)
    if "by_level" in rep:
        print_levels(rep["by_level"], out, rep.get("perturb"))
    print("", file=out)
    print(terminal_plot(rep["results"]), file=out)


def _sparse_mark(fit: dict[str, Any]) -> str:
    """' ⚠ sparse: …' after a fit's numbers when some of them are (mostly) the prior."""
    rates = (fit.get("sparse") or {}).get("rates") or []
    if not rates:
        return ""
    return (f" ⚠ sparse: {' and '.join(rates)} {'is' if len(rates) == 1 else 'are'} (mostly) "
            "the prior, and so are π and λ")


def _bounds_mark(b: dict[str, Any]) -> str:
    return " ⚠ upper and lower rest on π of a sparse fit (the prior)" \
        if b.get("from_sparse_fit") else ""


def _print_refused(refused: dict[str, Any] | None, out: TextIO, indent: str = "") -> None:
    if refused:
        reason = refused["reason"].replace("the fit is sparse", "the training fit is sparse", 1)
        print(f"{indent}  not scored: {', '.join(refused['policies'])} — refused as `mstui run` "
              f"would refuse them: {reason}", file=out)


def print_rows(rows: list[dict[str, Any]], out: TextIO, delta: float | None = None,
               indent: str = "") -> None:
    """Policy rows: accuracy and tokens with intervals, posterior band and ±δ band."""
    extra = "  ±δ (acc · tokens)" if delta is not None else ""
    print(f"\n{indent}  {'policy':20} {'accuracy [95%]':>22} {'mean tokens [95%]':>24} "
          f"{'rounds':>6}  sensitivity (acc · tokens, 5–95%){extra}", file=out)
    for r in rows:
        star = "*" if r["pareto"] else " "
        acc = f"{r['accuracy']:.3f} [{r['acc_lo']:.3f}, {r['acc_hi']:.3f}]"
        tok = f"{r['mean_tokens']:.0f} [{r['tok_lo']:.0f}, {r['tok_hi']:.0f}]"
        band = ""
        if "sensitivity" in r:
            sa, st = r["sensitivity"]["accuracy"], r["sensitivity"]["tokens"]
            band = f"{sa[0]:.3f}–{sa[1]:.3f} · {st[0]:.0f}–{st[1]:.0f}"
        if "perturbation" in r:
            pa, pt = r["perturbation"]["accuracy"], r["perturbation"]["tokens"]
            band = f"{band:33}  {pa[0]:.3f}–{pa[1]:.3f} · {pt[0]:.0f}–{pt[1]:.0f}"
        print(f"{indent}{star} {r['policy']:20} {acc:>22} {tok:>24} {r['mean_rounds']:>6.2f}  "
              f"{band}".rstrip(), file=out)


def _reference_row(curve: dict[str, Any]) -> str:
    """The row whose accuracy and tokens the curve shows: the middle markov κ, else the first."""
    names = list(curve["sizes"][0]["disagreement"])
    markov = [n for n in names if n.startswith("markov")]
    return markov[len(markov) // 2] if markov else names[0]


def print_curve(curve: dict[str, Any], out: TextIO) -> None:
    """Learning curve: disagreement with the full fit's decisions by training-set size."""
    print(f"\n  learning curve: fits on random subsets of the {curve['train_questions']} training "
          f"questions ({curve['repeats']} seeded repeats per size); share of the "
          f"{curve['test_rows']} held-out rows whose gate/markov stop round differs from the "
          "full fit's", file=out)
    if not curve["sizes"]:
        print(f"  ({curve.get('note', 'nothing to compare')})", file=out)
        return
    ref = _reference_row(curve)
    print(f"    {'questions':>9} {'fits':>4} {'mean':>7} {'worst':>7}  {'worst row':16} "
          f"{'acc ' + ref:>20} {'tokens':>7}", file=out)
    for s in curve["sizes"]:
        print(f"    {s['questions']:>9} {s['fits']:>4} {s['disagreement_mean']:>7.3f} "
              f"{s['disagreement_worst']:>7.3f}  {s['worst_row']:16} "
              f"{s['accuracy'][ref]:>20.3f} {s['mean_tokens'][ref]:>7.0f}", file=out)
    pct = f"{curve['threshold']:.0%}"
    if curve["stable_at"] is None:
        print(f"  decisions never settle within {pct} of the full fit's (worst row) on any "
              "subset smaller than all training questions: more labelled questions would "
              "likely still change them", file=out)
    else:
        print(f"  decisions stay within {pct} of the full fit's (worst row) from "
              f"{curve['stable_at']} training questions on", file=out)


def print_levels(levels: list[dict[str, Any]], out: TextIO, delta: float | None) -> None:
    """One table per difficulty level of the held-out questions."""
    for lv in levels:
        name = "unknown" if lv["level"] is None else str(lv["level"])
        print(f"\n  level {name}: {lv['n_test_questions']} held-out questions "
              f"({lv['n_test_runs']} runs); fit on {lv['n_train_questions']} training questions "
              f"({lv['fit_scope']})", end="", file=out)
        if "fit" in lv:
            f = lv["fit"]
            print(f": a={f['a']:.3f} b={f['b']:.3f} p̂0={f['p0']:.3f} π={f['pi']:.3f}"
                  + _sparse_mark(f), file=out)
        else:
            print(f" — {lv.get('note', '')}", file=out)
        if lv["results"]:
            print_rows(lv["results"], out, delta, indent="  ")
        _print_refused(lv.get("refused"), out, indent="  ")
        if lv["results"]:
            b = lv["bounds"]
            print(f"    bounds: neutral {b['neutral']:.3f} · upper {b['upper']:.3f} · lower "
                  f"{b['lower']:.3f} · oracle observed {b['oracle_observed']:.3f}"
                  + _bounds_mark(b), file=out)
