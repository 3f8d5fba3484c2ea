"""`mstui traces list|show|search|export|import`: stored runs on the command line."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import TYPE_CHECKING, Any, TextIO

from mstui.cli.common import db_path, dumps, fmt_num, open_existing_store, output_file
from mstui.core.types import finish_text
from mstui.store.query import parse_date

if TYPE_CHECKING:
    from mstui.store.regrade import RegradeReport


def register(sub: Any) -> None:
    """Add `mstui traces` and its subcommands."""
    from mstui.cli.parser import OneLineParser, add_db_option, ranged

    traces = sub.add_parser("traces",
                            help="list, show, search, export, import and regrade stored runs",
                            description="Browse the trace database on the command line, "
                                        "and regrade its rounds.")
    tsub = traces.add_subparsers(title="trace commands", metavar="ACTION",
                                 parser_class=OneLineParser, required=True)

    ls = tsub.add_parser("list", help="stored runs, newest first",
                         description="Stored runs, newest first, filtered and paged.")
    add_db_option(ls)
    _add_filters(ls)
    ls.add_argument("--limit", type=ranged(int, 1, 10**9),
                    default=20, metavar="N", help="runs shown (default 20)")
    ls.add_argument("--offset", type=ranged(int, 0, 10**12),
                    default=0, metavar="N", help="runs skipped first")
    ls.add_argument("--json", action="store_true", help="print a JSON array instead of a table")
    ls.set_defaults(handler=cmd_list)

    show = tsub.add_parser("show", help="one run round by round, with every decision",
                           description="One run: each round's answer, ✓/✗, tokens, and the "
                                       "decision after it with its rule, reason and numbers.")
    add_db_option(show)
    show.add_argument("run", type=ranged(int, 1, 2**63 - 1),
                      metavar="RUN", help="run id (see `mstui traces list`)")
    show.add_argument("--no-responses", action="store_true",
                      help="leave out the full response text of each round")
    show.add_argument("--json", action="store_true", help="print the run as one JSON object")
    show.set_defaults(handler=cmd_show)

    search = tsub.add_parser("search", help="full-text search over responses",
                             description="Rounds whose response contains every word of TEXT, "
                                         "newest first.")
    add_db_option(search)
    search.add_argument("text", metavar="TEXT", help="words to find")
    search.add_argument("--limit", type=ranged(int, 1, 10**6),
                        default=20, metavar="N", help="hits (default 20)")
    search.add_argument("--json", action="store_true", help="print a JSON array")
    search.set_defaults(handler=cmd_search)

    export = tsub.add_parser("export", help="export runs as JSONL (one run a line) or CSV",
                             description="Export runs, oldest first: JSONL has one run per line "
                                         "with its rounds and decisions (re-importable); CSV has "
                                         "one row per round.")
    add_db_option(export)
    export.add_argument("--format", choices=("jsonl", "csv"), default="jsonl",
                        help="jsonl (default) or csv")
    export.add_argument("--out", metavar="FILE", help="write here instead of standard output")
    _add_filters(export)
    export.set_defaults(handler=cmd_export)

    imp = tsub.add_parser("import", help="import a JSONL export (runs already present are kept)",
                          description="Import runs from a `traces export --format jsonl` file; "
                                      "runs already in the database (same uuid) are skipped.")
    add_db_option(imp)
    imp.add_argument("file", metavar="FILE", help="a JSONL export")
    imp.set_defaults(handler=cmd_import)

    regrade = tsub.add_parser(
        "regrade", help="re-score stored rounds with the current grader",
        description="Re-read each stored round's answer from its response and grade it against "
                    "its run's gold with the current grader (mstui's exact match, then "
                    "Math-Verify). Previous labels and judges are kept in the grade_history "
                    "table; fits made from changed labels are marked stale. Prints how many "
                    "labels changed per scope (model × problem set × strategy).")
    add_db_option(regrade)
    _add_filters(regrade)
    regrade.add_argument("--dry-run", action="store_true",
                         help="count what would change; write nothing")
    regrade.add_argument("--refit", action="store_true",
                         help="then refit every scope whose fit is stale, from this regrade "
                              "or an earlier one (as `mstui fit`)")
    regrade.add_argument("--json", action="store_true", help="print one JSON object")
    regrade.set_defaults(handler=cmd_regrade)

    up = tsub.add_parser("upgrade", help="bring a trace database to this mstui's schema",
                         description="Apply this mstui's pending schema migrations to an existing "
                                     "trace database (they only add tables and columns). "
                                     "Writing commands do this on their own; reading ones never "
                                     "change the file.")
    add_db_option(up)
    up.set_defaults(handler=cmd_upgrade)


def cmd_upgrade(args: argparse.Namespace) -> int:
    """Migrate an existing mstui trace store (never creates one, refuses foreign files), then
    split the rounds stored whole before thinking and final parts were (m003_reasoning added the
    columns but could not fill them): their answers are re-read from the final part."""
    from mstui.store.regrade import regrade, unsplit_runs
    from mstui.store.schema import SCHEMA_VERSION

    with open_existing_store(args.db, readonly=False) as store:
        before = store.schema_on_open
        if before < SCHEMA_VERSION:
            print(f"{store.path}: upgraded from schema {before} to {SCHEMA_VERSION}")
        else:
            print(f"{store.path}: schema {SCHEMA_VERSION} (up to date)")
        run_ids, rounds = unsplit_runs(store)
        if run_ids:
            from mstui.core.grading import default_grader

            report = regrade(store, grader=default_grader(), run_ids=run_ids)
            stale = (f"; fits made stale: {', '.join(f'#{i}' for i in report.stale_fits)}"
                     if report.stale_fits else "")
            print(f"{store.path}: {rounds} round(s) in {len(run_ids)} run(s) held thinking stored "
                  f"as one text: split into thinking and final, answers re-read from the final "
                  f"part ({report.changed} label(s) changed, old ones in grade_history){stale}")
    return 0


def _add_filters(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("filters")
    g.add_argument("--model", metavar="NAME", help="runs of this model (file name)")
    g.add_argument("--problem-set", metavar="NAME", help="runs on this problem set")
    g.add_argument("--policy", metavar="SPEC", help="runs with this policy, e.g. fixed:5")
    g.add_argument("--strategy", metavar="S", help="runs with this refinement strategy")
    g.add_argument("--status", choices=("running", "finished", "interrupted", "cancelled",
                                        "failed"), help="runs with this status")
    g.add_argument("--correct", choices=("yes", "no"),
                   help="runs whose final answer was right (yes) or wrong (no)")
    g.add_argument("--since", metavar="DATE", help="started at or after DATE (ISO, UTC)")
    g.add_argument("--until", metavar="DATE",
                   help="started before DATE (ISO, UTC; a bare date includes that whole day)")
    g.add_argument("--search", metavar="TEXT", help="runs with a response containing TEXT")


def filters_from(args: argparse.Namespace) -> dict[str, Any]:
    """list_runs / export_runs filters from the options; filters that can match nothing (an
    unknown policy, --since after --until) are errors, not a silent "0 runs"."""
    from mstui.core.policies import POLICY_NAMES

    f: dict[str, Any] = {}
    for key in ("model", "problem_set", "policy", "strategy", "status", "search"):
        if getattr(args, key, None) is not None:
            f[key] = getattr(args, key)
    policy = f.get("policy")
    if policy is not None and policy.partition(":")[0] not in POLICY_NAMES:
        raise ValueError(f"--policy {policy!r} is not a policy; runs are stored with one of "
                         f"{', '.join(POLICY_NAMES)} (e.g. fixed:5, markov:0.001)")
    if args.correct is not None:
        f["correct"] = args.correct == "yes"
    if args.since:
        f["since"] = parse_date(args.since)
    if args.until:
        f["until"] = parse_date(args.until, end=True)
    if "since" in f and "until" in f and f["since"] >= f["until"]:
        raise ValueError(f"--since {args.since} is not before --until {args.until}; no run can "
                         "match (swap them?)")
    return f


def _mark(correct: bool | None) -> str:
    return "" if correct is None else ("✓" if correct else "✗")


def _short(text: str | None, width: int) -> str:
    t = " ".join((text or "").split())
    return t if len(t) <= width else t[: width - 1] + "…"


def cmd_list(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """A table (or JSON) of runs."""
    out = out or sys.stdout
    if args.limit < 0 or args.offset < 0:
        raise ValueError("--limit and --offset must be 0 or more")
    filters = filters_from(args)
    with open_existing_store(args.db) as store:
        runs = store.list_runs(limit=args.limit, offset=args.offset, **filters)
        total = store.count_runs(**filters)
    if args.json:
        print(dumps(runs), file=out)
        return 0
    if not runs:
        print(f"no runs match (of {total})" if total else "no runs match", file=out)
        return 0
    print(f"{'id':>6}  {'started (UTC)':16}  {'status':11}  {'model':22}  {'set/problem':22}  "
          f"{'policy':10}  {'rnds':>4}  {'tokens':>7}  answer   question", file=out)
    for r in runs:
        where = r["problem_set"] or "—"
        if r["problem_id"]:
            where = f"{where}/{r['problem_id']}"
        final = r["final_answer_text"] or r["final_answer"]
        ans = f"{_short(final, 6)} {_mark(r['final_correct'])}"
        print(f"{r['id']:>6}  {(r['started_at'] or '')[:16].replace('T', ' '):16}  "
              f"{r['status']:11}  {_short(r['model'], 22):22}  {_short(where, 22):22}  "
              f"{_short(r['policy'], 10):10}  {r['n_rounds']:>4}  {r['total_tokens']:>7}  "
              f"{ans:8} {_short(r['question'], 40)}", file=out)
    first = args.offset + 1
    print(f"showing {first}–{args.offset + len(runs)} of {total}", file=out)
    return 0


def cmd_show(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """One run, round by round."""
    from mstui.core.types import cache_text  # as `mstui run` words it: unknown is not 0

    out = out or sys.stdout
    with open_existing_store(args.db) as store:
        run = store.get_run(args.run)
    rounds, decisions = run.pop("rounds"), run.pop("decisions")
    by_round = {d.round: d for d in decisions}
    if args.json:
        run["rounds"] = [dataclasses.asdict(r) | {"tokens": r.tokens} for r in rounds]
        run["decisions"] = [dataclasses.asdict(d) | {"final_action": d.final_action}
                            for d in decisions]
        print(dumps(run), file=out)
        return 0
    print(f"run {run['id']} · {run['status']} · {run['model']} · strategy {run['strategy']} · "
          f"policy {run['policy']} · cap {run['max_rounds']} rounds", file=out)
    print(f"started {run['started_at']}" + (f" · finished {run['finished_at']}"
                                             if run["finished_at"] else ""), file=out)
    if run["problem_set"]:
        lvl = f" · level {run['level']}" if run["level"] is not None else ""
        print(f"problem {run['problem_set']}/{run['problem_id'] or '—'}{lvl}", file=out)
    print(f"question: {run['question']}", file=out)
    if run["gold"] is not None:
        raw = run.get("gold_raw")
        given = f" (as given: {raw})" if raw is not None and raw != run["gold"] else ""
        print(f"gold: {run['gold']}{given}", file=out)
    if run["fit_id"] is not None:
        print(f"fit used: #{run['fit_id']}", file=out)
    for r in rounds:
        shown = r.answer_text if r.answer_text is not None else "(none found)"
        if r.truncated:  # as `mstui run` says it: not a failed extraction
            shown = "(none: the round ended inside its thinking)"
        judge = f" · judge {r.judge}" if r.judge else ""
        thinking = f" ({r.thinking_tokens} thinking)" if r.thinking_tokens else ""
        print(f"\n── round {r.index} ── answer {shown} {_mark(r.correct)} [{r.extraction_rule}"
              f"{judge}] · {r.prompt_tokens} prompt tok ({cache_text(r)}) · "
              f"{r.completion_tokens} tok{thinking} · {r.tokens_per_second:.0f} tok/s · "
              f"{finish_text(r.finish_reason)}", file=out)
        if r.error:
            print(f"error: {r.error}", file=out)
        if r.grade_error:
            print(f"grading: {r.grade_error}", file=out)
        if not args.no_responses:
            print(r.response.rstrip(), file=out)
        d = by_round.get(r.index)
        if d is not None:
            nums = " ".join(f"{k}={fmt_num(v)}" for k, v in (
                ("q", d.belief), ("π", d.pi), ("λ", d.lam), ("gain", d.expected_gain),
                ("κ", d.price), ("T", d.round_cost)) if v is not None)
            forced = f" (user forced {d.override}; policy said {d.action})" if d.override else ""
            print(f"→ {d.final_action} [{d.rule}]{forced}: {d.reason}"
                  + (f" · {nums}" if nums else ""), file=out)
    final = run["final_answer_text"] or run["final_answer"]
    print(f"\nfinal answer: {final if final is not None else '—'} {_mark(run['final_correct'])}"
          f" after {run['n_rounds']} round(s) · {run['total_tokens']} tokens"
          + (f" · error: {run['error']}" if run["error"] else ""), file=out)
    return 0


def cmd_search(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Full-text hits, newest first."""
    out = out or sys.stdout
    if not args.text.split():
        raise ValueError("give some words to search for")
    with open_existing_store(args.db) as store:
        hits = store.search(args.text, limit=args.limit)
    if args.json:
        print(dumps(hits), file=out)
        return 0
    if not hits:
        print(f"no response contains {args.text!r}", file=out)
        return 0
    for h in hits:
        print(f"run {h['run_id']} round {h['round']} · answer {h['answer'] or '—'} "
              f"{_mark(h['correct'])} · {_short(h['question'], 50)}", file=out)
        print(f"    {_short(h['snippet'], 110)}", file=out)
    return 0


def cmd_export(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Stream matching runs to a file or standard output."""
    out = out or sys.stdout
    from mstui.store import export_runs

    filters = filters_from(args)
    target = (output_file(args.out, "--out", protect=db_path(args.db))
              if args.out is not None else None)
    with open_existing_store(args.db) as store:
        if target is not None:
            with open(target, "w", encoding="utf-8", newline="") as f:
                n = export_runs(store, args.format, f, **filters)
            unit = "runs" if args.format == "jsonl" else "rounds"
            print(f"exported {n} {unit} to {args.out}", file=sys.stderr)
        else:
            export_runs(store, args.format, out, **filters)
    return 0


def cmd_import(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Import a JSONL export."""
    out = out or sys.stdout
    from pathlib import Path

    from mstui.cli.run_cmd import open_store
    from mstui.store import import_jsonl

    path = Path(args.file)
    if not path.is_file():
        raise ValueError(f"no such file: {path}")
    with open_store(args.db) as store:
        imported, skipped = import_jsonl(store, path)
        where = store.path
    print(f"imported {imported} run(s) into {where}; {skipped} already present", file=out)
    return 0


def cmd_regrade(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Regrade matching runs; print the changes per scope and the fits made stale."""
    out = out or sys.stdout
    from mstui.core.grading import default_grader
    from mstui.store import StoreError
    from mstui.store.regrade import RegradeReport, regrade

    filters = filters_from(args)
    grader = default_grader()
    grader.warm()
    err = sys.stderr

    def progress(done: int, total: int) -> None:
        if err.isatty() and (done == total or done % 10 == 0):
            print(f"\rregrading: {done}/{total} runs", end="" if done < total else "\n",
                  file=err, flush=True)

    report = RegradeReport()
    with open_existing_store(args.db, readonly=args.dry_run) as store:
        where = store.path
        try:
            regrade(store, grader=grader, dry_run=args.dry_run, on_run=progress, report=report,
                    **filters)
        except KeyboardInterrupt:
            # What was committed is consistent (labels and stale marks go together); say how
            # much, so the user knows to rerun.
            if report.written:
                print(f"mstui: {_partial(report)}", file=err)
            raise
        except StoreError as exc:
            raise StoreError(f"{exc}; {_partial(report)}" if report.written else str(exc)) \
                from None
    scopes = sorted(report.scopes.items(), key=lambda kv: tuple(str(x) for x in kv[0]))
    if args.json:
        print(dumps({
            "db": str(where), "dry_run": report.dry_run, "grader": report.grader,
            "runs": report.runs, "rounds": report.rounds, "changed": report.changed,
            "seconds": report.seconds, "stale_fits": report.stale_fits,
            "already_stale_fits": report.already_stale,
            "scopes": [{"model": m, "problem_set": p, "strategy": st, **dataclasses.asdict(c)}
                       for (m, p, st), c in scopes],
        }), file=out)
    else:
        if report.dry_run:
            head = (f"dry run, nothing written: {report.rounds} rounds of {report.runs} runs in "
                    f"{where} read and graded with {report.grader} in {report.seconds:.1f} s; "
                    f"{report.changed} label(s) would change")
        else:
            head = (f"regraded {report.rounds} rounds of {report.runs} runs in {where} with "
                    f"{report.grader} in {report.seconds:.1f} s; {report.changed} label(s) "
                    "changed")
        print(head, file=out)
        verb = "would change" if report.dry_run else "changed"
        for (model, pset, strategy), c in scopes:
            judges = ", ".join(f"{k} {v}" for k, v in sorted(c.judges.items()))
            print(f"  {model} · {pset} · {strategy}: {c.changed} of {c.rounds} labels {verb} "
                  f"(✗→✓ {c.to_right}, ✓→✗ {c.to_wrong}, →ungraded {c.to_ungraded}, "
                  f"ungraded→graded {c.from_ungraded}); right {c.right_before} → "
                  f"{c.right_after}; {c.answers} answer(s) re-read differently; judges: "
                  f"{judges}", file=out)
        hint = "" if args.refit else " (refit with `mstui fit`, or regrade with --refit)"
        if report.stale_fits:
            print(f"fits marked stale: {', '.join(f'#{i}' for i in report.stale_fits)}{hint}",
                  file=out)
        if report.already_stale:
            print("fits already stale from an earlier regrade: "
                  f"{', '.join(f'#{i}' for i in report.already_stale)}{hint}", file=out)
    if args.refit and not report.dry_run:
        _refit(args, out)
    return 0


def _partial(report: RegradeReport) -> str:
    """What an interrupted regrade had already committed."""
    ids = ", ".join(f"#{i}" for i in report.stale_fits)
    return (f"{report.written} label(s) of {report.written_runs} run(s) were already changed"
            + (f" and fits {ids} marked stale" if ids else "")
            + "; rerun `mstui traces regrade` to finish")


def _refit(args: argparse.Namespace, out: TextIO) -> None:
    """Refit every scope whose fit in use is stale (from this regrade or an earlier one), within
    the scope filters, as `mstui fit` would (by level where it was fitted by level before)."""
    from mstui.analysis.pools import MIN_TRANSITIONS
    from mstui.cli.fit_cmd import cmd_fit
    from mstui.store.regrade import stale_fits

    with open_existing_store(args.db) as store:
        stale = stale_fits(store, model=args.model, problem_set=args.problem_set,
                           strategy=args.strategy)
    todo = sorted({(f["model"], f["problem_set"], f["strategy"]) for f in stale}, key=str)
    by_level = {(f["model"], f["problem_set"], f["strategy"]) for f in stale
                if f["level"] is not None}
    if not todo:
        print("no stale fit to refit", file=out)
    for model, pset, strategy in todo:
        try:
            cmd_fit(argparse.Namespace(db=args.db, model=model, problem_set=pset,
                                       strategy=strategy,
                                       by_level=(model, pset, strategy) in by_level,
                                       min_transitions=MIN_TRANSITIONS, json=args.json), out)
        except ValueError as exc:  # too little data left to fit: say so, refit the others
            print(f"not refitted: {model} · {pset} · {strategy}: {exc}", file=out)
