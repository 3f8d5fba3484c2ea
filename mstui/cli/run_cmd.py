"""`mstui run`: one question, streamed round by round to the terminal (or as JSON lines)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from typing import TextIO

from mstui.analysis.choose import FoundFit
from mstui.cli.common import db_path, install_sigint
from mstui.cli.parser import config_from_args
from mstui.config import RunConfig
from mstui.core.loop import (
    DecisionMade,
    RoundFinished,
    RoundStarted,
    RunFinished,
    TokenStreamed,
    run_refinement,
)
from mstui.core.types import Decision, RoundRecord, cache_text, finish_text
from mstui.engine.factory import model_label, open_backend
from mstui.runner import Run, build_run, check_first_prompt, needs_fit
from mstui.session import RunRecorder, find_fit, rate_watch
from mstui.store import Store


def round_json(record: RoundRecord, decision: Decision | None) -> dict[str, object]:
    """The JSON line of one round (the `--json` output format)."""
    out: dict[str, object] = {
        "round": record.index,
        "answer": record.answer,
        "answer_text": record.answer_text,
        "extraction_rule": record.extraction_rule,
        "correct": record.correct,
        "judge": record.judge,
        "prompt_tokens": record.prompt_tokens,
        "cached_tokens": record.cached_tokens,
        "cached_source": record.cached_source,
        "completion_tokens": record.completion_tokens,
        "tokens_per_s": round(record.tokens_per_second, 2),
        "prompt_seconds": round(record.prompt_seconds, 4),
        "gen_seconds": round(record.gen_seconds, 4),
        "finish_reason": record.finish_reason,
        "truncated": record.truncated,
        "thinking_tokens": record.thinking_tokens,
    }
    if record.error:
        out["error"] = record.error
    if record.grade_error:
        out["grade_error"] = record.grade_error
    if decision is not None:
        out["decision"] = {"action": decision.final_action, "rule": decision.rule,
                           "reason": decision.reason, "belief": decision.belief,
                           "pi": decision.pi, "expected_gain": decision.expected_gain}
    return out


def final_json(finished: RunFinished, last: Decision | None, run_id: int | None,
               db: str | None) -> dict[str, object]:
    """The last `--json` line: the stored run, its final answer and why it stopped."""
    stop_rule, stop_reason = (last.rule, last.reason) if last is not None else (None, None)
    if finished.reason != "policy":  # cancelled or failed: that is why, whatever was decided
        stop_rule, stop_reason = finished.reason, finished.error or finished.reason
    final = finished.rounds[-1] if finished.rounds else None  # the final answer is the last's
    return {
        "run_id": run_id,
        "db": db,
        "final_answer": finished.final_answer,
        "final_answer_text": final.answer_text if final is not None else None,
        "final_correct": finished.final_correct,
        "rounds": len(finished.rounds),
        "tokens": sum(r.tokens for r in finished.rounds),
        "stopped_by": finished.reason,  # policy, cancelled or error
        "stop_rule": stop_rule,
        "stop_reason": stop_reason,
    }


def _mark(record: RoundRecord) -> str:
    if record.correct is None:
        return ""
    return " ✓" if record.correct else " ✗"


def cmd_run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run the refinement loop on one question; exit 0 when it ran, 2 on a bad input."""
    out = out or sys.stdout  # looked up per call: tests and callers swap sys.stdout
    question = (args.question or "").strip()
    if not question:
        raise ValueError("--question is empty; give the question text")
    config = config_from_args(args)
    if args.gold is not None:
        from mstui.core.grading import default_grader

        default_grader().warm()  # the grading process starts while the model loads
    store = None if args.no_store else open_store(args.db)
    found = None
    backend = None
    label = model_label(config)
    if label is None:  # a server picks its model: connect first (cheap), then look for a fit
        backend = open_backend(config)
        label = backend.info.model
    uses_fit = needs_fit(config.policy_spec)
    if uses_fit:
        found = _find_fit(store, args.db, label, config)
    else:  # a shadow: what markov would see and do, shown beside the policy's own decision
        found = _shadow_fit(store, args.db, label, config)
    for note in ignored_options(args, config):
        print(f"mstui: note: {note}", file=sys.stderr)
    used = found if uses_fit else None
    run = build_run(config, gold=args.gold, backend=backend, fit=used.fit if used else None,
                    obs_model=used.obs_model if used else None)
    config = run.config  # with the model profile's defaults
    if not args.json:
        threads = (f" · {run.backend.info.threads} thread(s)"
                   if run.backend.info.backend == "llama.cpp" else "")
        print(f"model: {run.backend.info.model} · {run.backend.info.offload_text}{threads} · "
              f"strategy {config.strategy} · policy {run.policy.spec}", file=out)
        print(f"profile: {run.profile.describe(config, context=run.backend.info.context_length)}",
              file=out)
        if found is not None:
            print(("" if uses_fit else "shadow (markov, not this policy): ") + found.describe(),
                  file=out)
    if found is not None and args.json:  # the JSON lines stay rounds only; the choice goes aside
        print(f"mstui: {'' if uses_fit else 'shadow: '}{found.describe()}", file=sys.stderr)
    if found is not None and found.stale:
        print(f"mstui: note: fit #{found.id} is stale ({found.stale}); `mstui fit` refits it",
              file=sys.stderr)
    check_first_prompt(run, question)  # too long for the context: say so, store nothing
    recorder = None
    if store is not None:
        recorder = RunRecorder(store, config, run.backend, question=question, gold=args.gold,
                               problem_set="adhoc", fit_id=used.id if used else None,
                               policy=run.policy.spec)
    cancel = threading.Event()
    previous = install_sigint(cancel, "cancelling the round in flight")
    try:
        failed = _stream(args, question, config, run, recorder, store, cancel, out,
                         None if uses_fit else found)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if failed is not None and failed.finish_reason == "error":
        raise ValueError(failed.error or "the round failed")
    if failed is not None:  # cancelled
        where = f"; stored as run {recorder.run_id}" if recorder is not None else ""
        print(f"mstui: round {failed.index} cancelled{where}", file=sys.stderr)
        return 130
    return 0


def _stream(args: argparse.Namespace, question: str, config: RunConfig, run: Run,
            recorder: RunRecorder | None, store: Store | None, cancel: threading.Event,
            out: TextIO, shadow_fit: FoundFit | None = None) -> RoundRecord | None:
    """Run and print the loop's events; the round that failed or was cancelled, if one was.
    With `shadow_fit`, each decision is shown beside what markov would decide from it."""
    from mstui.core.policies import parse_policy

    shadow = (shadow_fit, parse_policy("markov", shadow_fit.fit, shadow_fit.obs_model,
                                       price=config.price, allow_sparse=True)) \
        if shadow_fit is not None else None
    history: list[RoundRecord] = []
    pending: RoundRecord | None = None
    last: Decision | None = None
    failed = None
    # In-process only: a server's speed is not ours to fix with --threads.
    rates = rate_watch(config, store, run.backend)
    rate_hint: str | None = None
    for event in run_refinement(question, backend=run.backend, prompter=run.prompter,
                                policy=run.policy, max_rounds=config.max_rounds,
                                settings=config.gen, gold=args.gold, cancel=cancel,
                                thinking_budget=config.thinking_budget):
        if recorder is not None:
            recorder.handle(event)
        if isinstance(event, RoundStarted) and not args.json:
            print(f"\n── round {event.index} ──", file=out)
        elif isinstance(event, TokenStreamed) and not args.json:
            out.write(event.text)
            out.flush()
        elif isinstance(event, RoundFinished):
            pending = event.record
            slow = rates.add(event.record) if rates is not None else None
            if slow is not None:
                rate_hint = slow.hint
                print(f"mstui: note: {slow.hint}", file=sys.stderr if args.json else out)
            if event.record.finish_reason in ("error", "cancelled"):
                failed = event.record
                if not args.json:
                    out.write("\n")  # the stream stopped mid-line: end it before the verdict
                if args.json:
                    print(json.dumps(round_json(event.record, None)), file=out)
        elif isinstance(event, DecisionMade) and pending is not None:
            history.append(pending)
            seen = None
            if shadow is not None:
                fit, markov = shadow
                seen = (fit, markov.decide(history, max(config.max_rounds, len(history))))
            _report(pending, event.decision, args.json, out, seen)
            pending, last = None, event.decision
        elif isinstance(event, RunFinished):
            for note in degrade_notes(run.backend, config, event.rounds):
                print(f"mstui: note: {note}", file=sys.stderr)
            if args.json:
                final = final_json(event, last, recorder.run_id if recorder else None,
                                   str(store.path) if store else None)
                print(json.dumps(final | {"rate_hint": rate_hint}), file=out)
                continue
            # A cancelled or failed round is stored but not among the finished ones: say so,
            # not "after 0 round(s)".
            cut = (f" (+ round {failed.index}, {failed.finish_reason})"
                   if failed is not None else "")
            print(f"\nfinal answer: {event.final_answer} after {len(event.rounds)} finished "
                  f"round(s){cut}"
                  + (f" ({'correct' if event.final_correct else 'wrong'})"
                     if event.final_correct is not None else "")
                  + (f" · stored as run {recorder.run_id} in {store.path}" if recorder and store
                     else ""), file=out)
    return failed


def _find_fit(store: Store | None, db: str | None, model: str,
              config: RunConfig) -> FoundFit | None:
    """The fit the run uses. With --no-store it is still read from --db: reading is not
    storing (the file is opened read-only and left as it is)."""
    if store is not None:
        return find_fit(store, model, config.strategy, None, pin=config.fit_id)
    path = db_path(db)
    if not path.exists():
        if config.fit_id is not None:
            raise ValueError(f"no fit {config.fit_id}: {path} does not exist; point --db at "
                             "the trace database that holds it")
        return None
    with Store(path, readonly=True) as reader:
        return find_fit(reader, model, config.strategy, None, pin=config.fit_id)


def _shadow_fit(store: Store | None, db: str | None, model: str,
                config: RunConfig) -> FoundFit | None:
    """The fit markov would use, for a shadow beside a policy that reads none; a shadow never
    fails a run (an unreadable store or a missing pinned id just means no shadow)."""
    from mstui.store import StoreError

    try:
        return _find_fit(store, db, model, config)
    except (StoreError, ValueError, OSError):
        return None


def ignored_options(args: argparse.Namespace, config: RunConfig) -> list[str]:
    """Options given but not used by this policy, in words (a silent no-op misleads)."""
    spec = config.policy_spec.strip().lower()
    notes = []
    if config.fit_id is not None and not needs_fit(spec):
        notes.append(f"--fit {config.fit_id} is not used: policy {spec} decides without a fit")
    name, _, arg = spec.partition(":")
    if getattr(args, "price", 0.0) and name in ("markov", "mixture") and arg:
        notes.append(f"--price {args.price:g} is not used: the policy {spec} sets κ = {arg}")
    return notes


def degrade_notes(backend: object, config: RunConfig,
                  rounds: Sequence[RoundRecord]) -> list[str]:
    """What a backend could not give that the run asked for, in words (stderr, not the JSON)."""
    notes = []
    if getattr(backend, "usage_reported", None) is False:
        notes.append("the server reported no token usage; token counts are estimated locally "
                     "(completion: streamed pieces, prompt: characters / 4)")
    from mstui.runner import learned_note

    learned = learned_note(config, backend, rounds, next_runs=False)  # type: ignore[arg-type]
    if learned:
        notes.append(learned)
    found = [r for r in rounds if r.answer is not None]
    if config.gen.logprobs and found and all(r.observation.logprob is None for r in found):
        notes.append("--logprobs was asked for but the backend returned none; the belief runs "
                     "without the answer log-probability feature")
    return notes


def open_store(db: str | None) -> Store:
    """The trace store at --db, $MSTUI_DB or ./traces.db."""
    return Store(db_path(db))


def _report(record: RoundRecord, decision: Decision, as_json: bool, out: TextIO,
            shadow: tuple[FoundFit, Decision] | None = None) -> None:
    shade = None
    if shadow is not None:
        fit, seen = shadow
        shade = {"fit_id": fit.id, "belief": seen.belief, "action": seen.action,
                 "sparse": fit.fit.sparse_reason() is not None}
    if as_json:
        line = round_json(record, decision)
        if shade is not None:  # what markov would see and do; this policy reads no belief
            line["shadow"] = shade
        print(json.dumps(line), file=out)
        return
    shown = record.answer_text if record.answer_text is not None else "(none found)"
    judge = f" · judge {record.judge}" if record.judge else ""
    if record.truncated:
        shown = "(none: the round ended inside its thinking)"
    print(f"\n→ answer {shown}{_mark(record)} [{record.extraction_rule}{judge}] · "
          f"{record.prompt_tokens} prompt tok ({cache_text(record)}) · "
          f"{record.completion_tokens} tok"
          + (f" ({record.thinking_tokens} thinking)" if record.thinking_tokens else "")
          + f" · {record.tokens_per_second:.0f} tok/s · "
          f"{finish_text(record.finish_reason)}", file=out)
    print(f"→ {decision.final_action}: {decision.reason}", file=out)
    if shade is not None:
        sparse = ", sparse: the prior" if shade["sparse"] else ""
        print(f"  shadow (markov on fit #{shade['fit_id']}{sparse}): q_t "
              f"{shade['belief']:.3f} · would {str(shade['action']).upper()}", file=out)
