"""`mstui eval`: offline evaluation of the stopping policies over a stored pool (DESIGN §1.6)."""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path
from typing import Any, TextIO

from mstui.cli.common import dumps, open_existing_store

DEFAULT_POLICIES = "none,fixed,repeat,gate,markov,oracle"
DEFAULT_KAPPAS = (0.0, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3)


def register(sub: Any) -> None:
    """Add `mstui eval` to the subcommands."""
    from mstui.cli.parser import add_db_option

    p = sub.add_parser(
        "eval", help="replay every stopping policy over stored runs: accuracy vs tokens",
        description="Offline evaluation (DESIGN §1.6). Takes the stored runs that went to their "
                    "cap under the fixed policy (a pool), fits the chain on one part of the "
                    "questions and scores each policy by truncation on the other part: accuracy "
                    "(95%% interval) and mean tokens per question, beside the dataset bounds.")
    add_db_option(p)
    p.add_argument("--model", metavar="NAME", help="only scopes of this model (file name)")
    p.add_argument("--problem-set", metavar="NAME", help="only scopes of this problem set")
    p.add_argument("--strategy", metavar="S", help="only scopes of this refinement strategy")
    p.add_argument("--max-rounds", type=int, metavar="N",
                   help="use the pool of runs capped at N rounds (default: the cap with the "
                        "most runs)")
    p.add_argument("--policies", default=DEFAULT_POLICIES, metavar="LIST",
                   help="comma-separated: none, fixed (every fixed:N), repeat, gate, markov (the "
                        "κ sweep), oracle, or exact specs such as fixed:2, markov:0.001, "
                        f"gate:gamma=0.9 (default {DEFAULT_POLICIES})")
    p.add_argument("--kappas", metavar="LIST",
                   help="prices κ for the markov sweep, comma-separated (default "
                        f"{','.join(f'{k:g}' for k in DEFAULT_KAPPAS)})")
    p.add_argument("--test-fraction", type=float, default=0.5, metavar="F",
                   help="share of questions held out for scoring (default 0.5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the train/test split")
    p.add_argument("--sensitivity", type=int, default=30, metavar="DRAWS",
                   help="draws of (a, b, p̂0) from the fitted posteriors for the accuracy and "
                        "token band of the gate and markov rows (0 = off; default 30)")
    p.add_argument("--no-obs-model", action="store_true",
                   help="markov uses the chain alone (predict-only belief)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--plot", metavar="FILE.svg",
                   help="also write an accuracy-vs-tokens plot (SVG; PNG needs matplotlib)")
    p.set_defaults(handler=cmd_eval)


def expand_policies(text: str, n_rounds: int) -> list[str]:
    """Policy names to specs; `fixed` → fixed:1..N−1 and `markov` → the κ sweep marker."""
    specs: list[str] = []
    for raw in text.split(","):
        name = raw.strip().lower()
        if not name:
            continue
        if name == "fixed":
            specs += [f"fixed:{n}" for n in range(1, n_rounds)]
        else:
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


def evaluate_scope(sp: Any, specs: list[str], kappas: list[float], *, test_fraction: float,
                   seed: int, draws: int, use_obs: bool) -> dict[str, Any]:
    """Fit on train questions, score every policy on the test questions of one stored pool."""
    import numpy as np

    from mstui.core.belief import ObservationModel
    from mstui.core.evaluation import bounds, evaluate, fit_pool, pareto_front, sweep
    from mstui.core.policies import parse_policy
    from mstui.fitting_io import split_by_problem, with_p0_spread

    train_idx, test_idx = split_by_problem(sp.problems, test_fraction, seed)
    train, test = sp.pool.subset(train_idx), sp.pool.subset(test_idx)
    fit = fit_pool(train.correct, scope="train")
    om = None
    if use_obs:
        om = ObservationModel.fit_arrays(train.found, train.changed, train.agreement,
                                         train.logprob, train.correct, chain=fit.chain, p0=fit.p0)
    # Repeated runs of a question identify the spread of p0(q) (for the bounds).
    fit = _spread_from_rows(fit, [sp.problems[i] for i in train_idx], train.correct[:, 0],
                            with_p0_spread)
    results = []
    for spec in specs:
        if spec == "markov":
            results += sweep(test, fit, om, kappas=kappas)
            continue
        pol = parse_policy(spec, fit, om)
        results += evaluate(test, [pol])
    band: dict[str, Any] = {}
    if draws > 0:
        band = _sensitivity(test, fit, om, specs, kappas, draws,
                            int(train.correct[:, 0].sum()), train.n_questions)
    rows = []
    front = {r.policy for r in pareto_front([r for r in results if r.policy != "oracle"])}
    for r in results:
        d = dataclasses.asdict(r)
        d["pareto"] = r.policy in front
        if r.policy in band:
            d["sensitivity"] = band[r.policy]
        rows.append(d)
    return {
        "max_rounds": sp.max_rounds,
        "n_train_questions": len({sp.problems[i] for i in train_idx}),
        "n_test_questions": len({sp.problems[i] for i in test_idx}),
        "n_train_runs": int(train_idx.size),
        "n_test_runs": int(test_idx.size),
        "dropped_runs": sp.dropped,
        "other_caps": sp.other_caps,
        "fit": {"a": fit.a, "a_lo": fit.a_lo, "a_hi": fit.a_hi, "b": fit.b, "b_lo": fit.b_lo,
                "b_hi": fit.b_hi, "p0": fit.p0, "pi": fit.pi, "lam": fit.lam,
                "obs_model": om is not None},
        "results": rows,
        "bounds": bounds(test, fit),
        "mean_tokens_per_round": float(np.mean(test.tokens)),
    }


def _spread_from_rows(fit: Any, problems: list[str], correct0: Any, helper: Any) -> Any:
    import numpy as np

    from mstui.fitting_io import LabelledArrays

    codes = np.unique(np.asarray(problems, dtype=str), return_inverse=True)[1].ravel()
    n = codes.size
    zeros_i = np.zeros(n, np.int64)
    data = LabelledArrays(np.arange(n, dtype=np.int64), codes.astype(np.int64), zeros_i,
                          np.asarray(correct0, np.bool_), np.ones(n, np.bool_), zeros_i - 1,
                          np.full(n, np.nan), np.full(n, np.nan), zeros_i - 1)
    return helper(fit, data)


def _sensitivity(test: Any, fit: Any, om: Any, specs: list[str], kappas: list[float],
                 draws: int, k0: int, n0: int) -> dict[str, dict[str, list[float]]]:
    """5–95% bands of accuracy and tokens of the gate and markov rows when (a, b, p̂0) are drawn
    from their posteriors (p̂0 from the train questions' round-0 counts k0 of n0)."""
    import numpy as np

    from mstui.core.evaluation import score, stop_rounds, sweep
    from mstui.core.policies import parse_policy

    rng = np.random.default_rng(12345)
    al, be = fit.prior_alpha, fit.prior_beta
    acc: dict[str, list[float]] = {}
    tok: dict[str, list[float]] = {}
    for _ in range(draws):
        f = dataclasses.replace(fit, a=float(rng.beta(fit.n_cw + al, fit.n_cc + be)),
                                b=float(rng.beta(fit.n_wc + al, fit.n_ww + be)),
                                p0=float(rng.beta(k0 + al, n0 - k0 + be)))
        res = sweep(test, f, om, kappas=kappas) if "markov" in specs else []
        for spec in specs:
            if spec.startswith(("gate", "markov:")):
                pol = parse_policy(spec, f, om)
                res.append(score(test, stop_rounds(test, pol), pol.spec))
        for r in res:
            acc.setdefault(r.policy, []).append(r.accuracy)
            tok.setdefault(r.policy, []).append(r.mean_tokens)
    return {k: {"accuracy": [float(np.percentile(v, 5)), float(np.percentile(v, 95))],
                "tokens": [float(np.percentile(tok[k], 5)), float(np.percentile(tok[k], 95))]}
            for k, v in acc.items()}


def cmd_eval(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Evaluate every matching scope that has a pool."""
    out = out or sys.stdout
    from mstui.fitting_io import load_pool

    if not 0.0 < args.test_fraction < 1.0:
        raise ValueError(f"--test-fraction must be between 0 and 1 (got {args.test_fraction})")
    if args.max_rounds is not None and args.max_rounds < 2:
        raise ValueError("--max-rounds must be at least 2 for an evaluation pool")
    if args.plot and Path(args.plot).suffix.lower() not in (".svg", ".png"):
        raise ValueError("--plot writes .svg (or .png with matplotlib installed)")
    kappas = parse_kappas(args.kappas)
    reports: list[dict[str, Any]] = []
    with open_existing_store(args.db) as store:
        scopes = [s for s in store.scopes()
                  if (args.model is None or s["model"] == args.model)
                  and (args.problem_set is None or s["problem_set"] == args.problem_set)
                  and (args.strategy is None or s["strategy"] == args.strategy)]
        if not scopes:
            raise ValueError(f"no labelled runs in {store.path} match the filters; run "
                             "`mstui sweep --policy fixed` on a problem set with gold answers")
        for s in scopes:
            if None in (s["model"], s["problem_set"], s["strategy"]):
                continue  # no way to select exactly these runs (see `mstui fit`)
            sp = load_pool(store, model=s["model"], problem_set=s["problem_set"],
                           strategy=s["strategy"], max_rounds=args.max_rounds)
            if sp is None:
                continue
            specs = expand_policies(args.policies, sp.max_rounds)
            rep = evaluate_scope(sp, specs, kappas, test_fraction=args.test_fraction,
                                 seed=args.seed, draws=args.sensitivity,
                                 use_obs=not args.no_obs_model)
            rep["scope"] = {k: s[k] for k in ("model", "problem_set", "strategy")}
            reports.append(rep)
    if not reports:
        cap = f" capped at {args.max_rounds} rounds" if args.max_rounds else ""
        raise ValueError(f"no pool{cap}: evaluation needs finished runs that went to their cap "
                         "with the fixed policy; run `mstui sweep --policy fixed --max-rounds 6`")
    if args.json:
        print(dumps({"scopes": reports}), file=out)
    else:
        for rep in reports:
            print_report(rep, out)
    if args.plot:
        write_plot(reports[0], Path(args.plot))
        if not args.json:
            print(f"\nplot written to {args.plot}", file=out)
    return 0


def print_report(rep: dict[str, Any], out: TextIO) -> None:
    """The table of one scope, then its bounds and a small terminal plot."""
    s, f = rep["scope"], rep["fit"]
    print(f"\n{s['model']} · {s['problem_set']} · {s['strategy']} · pool of runs to "
          f"{rep['max_rounds']} rounds", file=out)
    print(f"fit on {rep['n_train_questions']} questions ({rep['n_train_runs']} runs), scored on "
          f"{rep['n_test_questions']} others ({rep['n_test_runs']} runs): a={f['a']:.3f} "
          f"b={f['b']:.3f} p̂0={f['p0']:.3f} π={f['pi']:.3f} λ={f['lam']:.3f}"
          + ("" if f["obs_model"] else " · markov predict-only"), file=out)
    print(f"\n  {'policy':20} {'accuracy [95%]':>22} {'mean tokens [95%]':>24} {'rounds':>6}  "
          "sensitivity (acc · tokens, 5–95%)", file=out)
    for r in rep["results"]:
        star = "*" if r["pareto"] else " "
        acc = f"{r['accuracy']:.3f} [{r['acc_lo']:.3f}, {r['acc_hi']:.3f}]"
        tok = f"{r['mean_tokens']:.0f} [{r['tok_lo']:.0f}, {r['tok_hi']:.0f}]"
        band = ""
        if "sensitivity" in r:
            sa, st = r["sensitivity"]["accuracy"], r["sensitivity"]["tokens"]
            band = f"{sa[0]:.3f}–{sa[1]:.3f} · {st[0]:.0f}–{st[1]:.0f}"
        print(f"{star} {r['policy']:20} {acc:>22} {tok:>24} {r['mean_rounds']:>6.2f}  {band}",
              file=out)
    b = rep["bounds"]
    print(f"\n  bounds: neutral {b['neutral']:.3f} (observed {b['neutral_observed']:.3f}) · "
          f"upper {b['upper']:.3f} · lower {b['lower']:.3f} · oracle observed "
          f"{b['oracle_observed']:.3f} — {b['note']}", file=out)
    print("  * on the Pareto front (no other policy but the oracle is as accurate for fewer "
          "tokens)", file=out)
    if rep["dropped_runs"]:
        print(f"  {rep['dropped_runs']} run(s) at the cap left out (a round unlabelled or "
              "cancelled)", file=out)
    if rep["other_caps"]:
        caps = ", ".join(f"{n} rounds ({c} runs)" for n, c in sorted(rep["other_caps"].items()))
        print(f"  other pools: {caps}; pick one with --max-rounds", file=out)
    print("", file=out)
    print(terminal_plot(rep["results"]), file=out)


def _points(results: list[dict[str, Any]]) -> list[tuple[float, float, str]]:
    return [(r["mean_tokens"], r["accuracy"], r["policy"]) for r in results]


def terminal_plot(results: list[dict[str, Any]], width: int = 60, height: int = 12) -> str:
    """Accuracy (up) against mean tokens (right): n none, f fixed, r repeat, g gate,
    m markov, o oracle."""
    pts = _points(results)
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 0.01)
    grid = [[" "] * width for _ in range(height)]
    for x, y, name in pts:
        c = int((x - x0) / (x1 - x0) * (width - 1))
        r = height - 1 - int((y - y0) / (y1 - y0) * (height - 1))
        grid[r][c] = name[0]
    lines = [f"  {y1:6.3f} ┤" + "".join(grid[0])]
    lines += ["         │" + "".join(row) for row in grid[1:-1]]
    lines.append(f"  {y0:6.3f} ┤" + "".join(grid[-1]))
    lines.append("         └" + "─" * width)
    lines.append(f"          {x0:<10.0f}{'mean tokens per question':^{width - 20}}{x1:>10.0f}")
    lines.append("          n none · f fixed · r repeat · g gate · m markov · o oracle")
    return "\n".join(lines)


def write_plot(rep: dict[str, Any], path: Path) -> None:
    """Accuracy vs tokens: SVG written by hand; PNG through matplotlib when installed."""
    results = rep["results"]
    if path.suffix.lower() == ".png":
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            raise ValueError("a PNG plot needs matplotlib (pip install matplotlib); "
                             "or ask for an .svg file") from None
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for x, y, name in _points(results):
            ax.plot(x, y, "o")
            ax.annotate(name, (x, y), fontsize=7)
        ax.set_xlabel("mean tokens per question")
        ax.set_ylabel("accuracy")
        fig.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(fig)
        return
    path.write_text(svg_plot(rep), encoding="utf-8")


def svg_plot(rep: dict[str, Any], w: int = 720, h: int = 460) -> str:
    """A self-contained SVG scatter with interval bars and labels."""
    from html import escape

    results = rep["results"]
    left, right, top, bottom = 70, 30, 40, 60
    xs = [r["tok_lo"] for r in results] + [r["tok_hi"] for r in results]
    ys = [r["acc_lo"] for r in results] + [r["acc_hi"] for r in results]
    x0, x1 = min(xs), max(xs)
    y0, y1 = max(0.0, min(ys) - 0.02), min(1.0, max(ys) + 0.02)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 0.01)

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (w - left - right)

    def py(y: float) -> float:
        return h - bottom - (y - y0) / (y1 - y0) * (h - top - bottom)

    colors = {"n": "#555", "f": "#1f77b4", "r": "#9467bd", "g": "#2ca02c", "m": "#d62728",
              "o": "#ff7f0e"}
    s = rep["scope"]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
           f'font-family="sans-serif" font-size="11">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{w / 2}" y="20" text-anchor="middle" font-size="13">'
           f'{escape(str(s["model"]))} · {escape(str(s["problem_set"]))} — accuracy vs tokens '
           f'(held-out questions)</text>',
           f'<line x1="{left}" y1="{h - bottom}" x2="{w - right}" y2="{h - bottom}" '
           f'stroke="black"/>',
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{h - bottom}" stroke="black"/>',
           f'<text x="{(left + w - right) / 2}" y="{h - 20}" text-anchor="middle">mean tokens '
           f'per question</text>',
           f'<text x="18" y="{(top + h - bottom) / 2}" text-anchor="middle" '
           f'transform="rotate(-90 18 {(top + h - bottom) / 2})">accuracy</text>']
    for i in range(5):
        xv, yv = x0 + (x1 - x0) * i / 4, y0 + (y1 - y0) * i / 4
        out.append(f'<text x="{px(xv):.1f}" y="{h - bottom + 16}" text-anchor="middle">'
                   f'{xv:.0f}</text>')
        out.append(f'<text x="{left - 6}" y="{py(yv) + 4:.1f}" text-anchor="end">{yv:.2f}</text>')
    for r in results:
        c = colors.get(r["policy"][0], "#000")
        x, y = px(r["mean_tokens"]), py(r["accuracy"])
        out.append(f'<line x1="{x:.1f}" y1="{py(r["acc_lo"]):.1f}" x2="{x:.1f}" '
                   f'y2="{py(r["acc_hi"]):.1f}" stroke="{c}" stroke-opacity="0.4"/>')
        out.append(f'<line x1="{px(r["tok_lo"]):.1f}" y1="{y:.1f}" x2="{px(r["tok_hi"]):.1f}" '
                   f'y2="{y:.1f}" stroke="{c}" stroke-opacity="0.4"/>')
        out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{c}"/>')
        out.append(f'<text x="{x + 6:.1f}" y="{y - 6:.1f}" fill="{c}">'
                   f'{escape(r["policy"])}</text>')
    out.append("</svg>")
    return "\n".join(out)
