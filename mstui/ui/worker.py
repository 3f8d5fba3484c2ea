"""The model worker: one long-lived thread that owns the model, runs the loop and posts messages."""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from textual.message import Message

from mstui.config import RunConfig
from mstui.core.backend import Backend
from mstui.core.profiles import ModelProfile
from mstui.core.throughput import RateWatch
from mstui.core.types import Action, Decision, RoundRecord
from mstui.ui import messages as m
from mstui.ui.breakpoints import Breakpoints, hit
from mstui.ui.tokens import RoundInfo, TokenBuffer
from mstui.ui.view import ProbView, prob_view

# The loop, runner, session and store import numpy/scipy/sqlite-utils: they are imported on the
# worker thread (in `_main`), so the first frame is drawn while they load.
if TYPE_CHECKING:
    from mstui.analysis.choose import FoundFit
    from mstui.core.belief import ObservationModel
    from mstui.core.fitting import ChainFit
    from mstui.core.loop import Event
    from mstui.session import RunRecorder
    from mstui.store import Store

BackendFactory = Callable[[RunConfig], Backend]
# A forced continue at the cap would store an override that no round follows.
CAP_NOTICE = ("the cap of {n} round(s) is reached: no round can follow, so c cannot continue; "
              "] raises N_max for the next run")
Post = Callable[[Message], object]


def one_line(exc: BaseException) -> str:
    """An error as one line for a status bar: the message, or the type name when there is none."""
    text = " ".join(str(exc).split())
    return text if text else type(exc).__name__


def default_factory(config: RunConfig) -> Backend:
    """The CLI's backend: llama.cpp in-process (imported here, so the first frame never waits),
    loaded with the context its model profile asks for."""
    from mstui.engine.factory import load

    return load(config)[0]


@dataclass(frozen=True)
class ShowFit:
    """A job: post the fit the next run would use (after the policy or strategy changed)."""

    config: RunConfig
    problem_set: str | None = None


def fit_note(found: FoundFit | None, config: RunConfig, auto: bool = False) -> str:
    """The caveat shown beside a fit: sparse (the prior, not data; drives no decision unless
    allowed), and a shadow when the policy does not read it. "" when there is none."""
    from mstui.core.policies import reads_belief
    from mstui.runner import needs_fit

    if found is None:
        return ""
    notes = []
    sparse = found.fit.sparse_reason()
    if sparse:
        notes.append(sparse + ("; allowed by --allow-sparse-fit" if config.allow_sparse_fit
                               else "; shown only, it drives no decision"))
    spec = config.policy_spec
    if not reads_belief(spec) and not auto:
        notes.append(f"shadow belief: policy {spec} does not read it" if not needs_fit(spec)
                     else f"shadow belief: policy {spec} plans from p̂₀ and does not read it")
    return "; ".join(notes)


@dataclass(frozen=True)
class RunRequest:
    """One question to run; `auto_policy` picks markov when a fit exists, else fixed."""

    question: str
    gold: str | None = None
    problem_set: str | None = None
    problem_id: str | None = None
    level: int | None = None
    config: RunConfig | None = None
    auto_policy: bool = False


@dataclass
class _RunContext:
    fit: ChainFit | None
    obs: ObservationModel | None
    max_rounds: int
    label: str
    note: str = ""  # the fit's caveat: sparse, or a shadow the policy does not read
    price: float = 0.0  # κ of this run: the shadow markov decision uses it
    history: list[RoundRecord] = field(default_factory=list)
    prev_decision: Decision | None = None
    prev_belief: float | None = None
    # The view _review computed for a round's decision, reused when that decision is posted
    # (an override does not change it): one filter pass per decision, not two.
    reviewed: tuple[int, ProbView] | None = None


class ModelWorker:
    """Loads the backend in its own thread and serves run requests there, one at a time.

    llama.cpp models must be created and used on one thread, so everything model-related
    happens in `_main`; the UI talks to it only through `submit`, `command` and `cancel`.
    """

    def __init__(
        self,
        post: Post,
        config: RunConfig,
        *,
        db_path: str | Path | None,
        backend_factory: BackendFactory | None = None,
    ) -> None:
        self.post = post
        self.config = config
        self.db_path = db_path
        self.factory = backend_factory or default_factory
        self.tokens = TokenBuffer()
        self.breakpoints = Breakpoints()
        self.step_mode = False
        # `e`: run to the end past every breakpoint, until this run ends (reset per run).
        self.to_end = False
        self.backend: Backend | None = None
        self.profile: ModelProfile | None = None  # the loaded model's (what runs will use)
        self.rates: RateWatch | None = None  # the loaded model's generation speed
        self.store: Store | None = None
        self.busy = False
        self.paused = False
        self._force: Action | None = None
        self._jobs: queue.Queue[RunRequest | RunConfig | ShowFit | None] = queue.Queue()
        self.auto_policy = False  # the TUI's "auto" (markov when a fit exists, else fixed)
        self.problem_set: str | None = None  # the problem set the next run likely comes from
        self._commands: queue.Queue[str] = queue.Queue()
        self._cancel = threading.Event()
        self._ctx: _RunContext | None = None
        self._thread = threading.Thread(target=self._main, name="mstui-model", daemon=True)

    # ---- called from the UI thread -------------------------------------------------------------

    def start(self) -> None:
        """Start the thread; the model loads in the background."""
        self._thread.start()

    def submit(self, request: RunRequest) -> bool:
        """Queue a run; False when one is already running (the UI says so)."""
        if self.busy:
            return False
        self.busy = True
        self._jobs.put(request)
        return True

    def refresh_fit(self, config: RunConfig) -> None:
        """Show the fit the next run would use (on the worker thread, which owns the store)."""
        self._jobs.put(ShowFit(config, self.problem_set))

    def reload(self, config: RunConfig) -> None:
        """Load another model (after the current run)."""
        self._jobs.put(config)

    def cancel(self) -> None:
        """Cancel the round in flight at its next token, and release a paused review."""
        self._cancel.set()
        if self.paused:
            self._commands.put("cancel")

    def command(self, cmd: str) -> bool:
        """Answer a pause: 'step', 'continue', 'stop' or 'run'. While running, 'continue'/'stop'
        are remembered and forced on the next decision. False when there is nothing to act on."""
        if self.paused:
            self._commands.put(cmd)
            return True
        if self.busy and cmd in ("continue", "stop"):
            self._force = "continue" if cmd == "continue" else "stop"
            return True
        return False

    def shutdown(self, timeout: float = 2.0) -> None:
        """Stop the current run and the thread (the model is freed on its own thread)."""
        self._cancel.set()
        self._commands.put("cancel")
        self._jobs.put(None)
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    # ---- the worker thread ---------------------------------------------------------------------

    def _main(self) -> None:
        self._open_store()
        self._load(self.config)
        while (job := self._jobs.get()) is not None:
            if isinstance(job, RunConfig):
                self._load(job)
                continue
            if isinstance(job, ShowFit):
                if self.backend is not None:
                    self.show_fit(job.config, job.problem_set)
                continue
            try:
                self._run(job)
            except Exception as exc:  # never let a run kill the thread (or the app)
                self.post(m.Notice(f"run failed: {one_line(exc)}", "error"))
                self.post(m.RunDone(None, "error", None, None, 0, one_line(exc)))
            finally:
                self.busy = False
                self.paused = False
        if self.backend is not None and hasattr(self.backend, "close"):
            self.backend.close()

    def _open_store(self) -> None:
        from mstui.store import Store, StoreError

        if self.db_path is None:
            return
        try:
            self.store = Store(self.db_path)
        except (StoreError, OSError) as exc:
            self.post(m.Notice(f"not recording runs: {one_line(exc)}", "error"))

    def _load(self, config: RunConfig) -> None:
        name = config.model or "default model"
        self.post(m.ModelLoading(name))
        started = time.perf_counter()
        old, self.backend = self.backend, None
        if old is not None and hasattr(old, "close"):
            old.close()
        try:
            from mstui.engine.factory import backend_profile

            self.backend = self.factory(config)
            profile = backend_profile(config, self.backend)
        except Exception as exc:  # a missing file, a bad GGUF, out of memory: one line each
            self.post(m.ModelFailed(one_line(exc)))
            return
        # The profile's defaults (reasoning format, token budget, sampling) become the TUI's
        # settings, shown and changeable like any other.
        self.config = config.with_profile(profile)
        self.profile = profile
        self.post(m.Notice(f"profile {profile.describe(self.config, context=self.backend.info.context_length)}",  # noqa: E501
                           "information"))
        info = self.backend.info
        # In-process models only: a notice when tok/s collapses, naming --threads.
        from mstui.session import rate_watch

        self.rates = rate_watch(config, self.store, self.backend)
        self.post(
            m.ModelReady(info.model, info.backend, info.offload_text, time.perf_counter() - started)
        )
        self.show_fit(self.config, self.problem_set)

    def show_fit(self, config: RunConfig, problem_set: str | None = None) -> None:
        """Post the fit this model/strategy would use and its prediction before round 0
        (p̂₀ and the curve from it), so the probability panel is never empty when a fit exists."""
        found, label = self._fit_for(config, problem_set)
        view = prob_view(found.fit if found else None, found.obs_model if found else None, [],
                         None, config.max_rounds, label,
                         fit_note(found, config, self.auto_policy))
        self.post(m.FitShown(view))

    def _fit_for(self, config: RunConfig, problem_set: str | None
                 ) -> tuple[FoundFit | None, str]:
        """(the stored fit for the loaded model and config's strategy, its label). Looked up
        whatever the policy: policies that do not read it still show its belief."""
        from mstui.session import find_fit
        from mstui.store import StoreError

        if self.store is None or self.backend is None:
            return None, "no fit (no trace store)"
        try:
            found = find_fit(self.store, self.backend.info.model, config.strategy, problem_set,
                             pin=config.fit_id)
        except StoreError as exc:
            self.post(m.Notice(one_line(exc), "warning"))
            return None, "no fit (the store could not be read)"
        if found is None:
            return None, "no fit"
        label = f"fit #{found.id} · {found.scope['problem_set']} · {config.strategy}" + (
            "" if found.exact else " (other set)")
        return found, label

    def _run(self, req: RunRequest) -> None:
        from mstui.core.loop import RunFinished, run_refinement
        from mstui.runner import build_run, needs_fit

        if self.backend is None:
            self.post(m.Notice("no model is loaded; see the status line", "error"))
            self.post(m.RunDone(None, "error", None, None, 0, "no model loaded"))
            return
        config = req.config or self.config
        if req.gold is not None:
            from mstui.core.grading import default_grader

            default_grader().warm()  # the grading process starts while round 0 streams
        # The fit is looked up whatever the policy: fixed, none, repeat and oracle show its
        # belief as a shadow (and the belief breakpoint works under them).
        found, label = self._fit_for(config, req.problem_set)
        if req.auto_policy:
            # auto falls back to fixed where markov would refuse the fit (the one sparse rule).
            sparse = found.fit.sparse_reason() if found else None
            usable = found is not None and (sparse is None or config.allow_sparse_fit)
            config = dataclasses.replace(config, policy="markov" if usable else "fixed")
            if found is not None and not usable:
                self.post(m.Notice(f"fit #{found.id}: {sparse}: policy fixed (runs to N_max)",
                                   "warning"))
            if found is None:
                self.post(
                    m.Notice(
                        "no fit for this model/strategy: policy fixed (runs to "
                        "N_max); run `mstui sweep` and `mstui fit` for markov",
                        "warning",
                    )
                )
        run = build_run(
            config,
            gold=req.gold,
            backend=self.backend,
            fit=found.fit if found else None,
            obs_model=found.obs_model if found else None,
            profile=self.profile if config.profile == "auto" else None,
        )
        config = run.config  # with the model profile's defaults
        from mstui.runner import check_first_prompt

        check_first_prompt(run, req.question)  # one line, and no run stored, when it cannot fit
        uses_fit = needs_fit(run.policy.spec)
        recorder = self._recorder(config, req, found.id if found and uses_fit else None,
                                  run.policy.spec)
        if found is not None:
            self.post(m.Notice(found.describe(), "information"))
        self._ctx = _RunContext(
            found.fit if found else None,
            found.obs_model if found else None,
            config.max_rounds,
            label,
            fit_note(found, config),
            price=config.price,
        )
        self.to_end = False
        self._cancel.clear()
        self._force = None
        while not self._commands.empty():
            self._commands.get_nowait()
        run_id = recorder.run_id if recorder else None
        self.post(
            m.RunBegan(run_id, req.question, req.gold, run.policy.spec, config.max_rounds, label)
        )
        ctx = self._ctx
        self.post(m.FitShown(prob_view(ctx.fit, ctx.obs, [], None, ctx.max_rounds, ctx.label,
                                       ctx.note)))
        for event in run_refinement(
            req.question,
            backend=run.backend,
            prompter=run.prompter,
            policy=run.policy,
            max_rounds=config.max_rounds,
            settings=config.gen,
            gold=req.gold,
            cancel=self._cancel,
            review=self._review,
            thinking_budget=config.thinking_budget,
        ):
            recorder = self._record(recorder, event)
            if isinstance(event, RunFinished):
                self._learn(config, event.rounds)
            self._dispatch(event, run_id)

    def _learn(self, config: RunConfig, rounds: Sequence[RoundRecord]) -> None:
        """A model loaded as plain that turned out to think: its profile for the next runs."""
        from mstui.runner import learned_note, learned_profile

        assert self.backend is not None
        found = learned_profile(config, self.backend, rounds)
        if found is None:
            return
        self.post(m.Notice(learned_note(config, self.backend, rounds, next_runs=True), "warning"))
        self.profile = found[0]
        self.config = dataclasses.replace(self.config, applied_profile=None).with_profile(found[0])

    def _recorder(
        self, config: RunConfig, req: RunRequest, fit_id: int | None, policy: str
    ) -> RunRecorder | None:
        from mstui.core.answers import normalize_answer
        from mstui.session import RunRecorder
        from mstui.store import StoreError

        if self.store is None or self.backend is None:
            return None
        try:
            if req.problem_set and req.problem_id:
                self.store.upsert_problems(
                    [
                        {
                            "id": req.problem_id,
                            "question": req.question,
                            "answer": normalize_answer(req.gold) or req.gold,
                            "raw_answer": req.gold,  # the gold as given
                            "level": req.level,
                        }
                    ],
                    problem_set=req.problem_set,
                )
            return RunRecorder(
                self.store,
                config,
                self.backend,
                question=req.question,
                gold=req.gold,
                problem_set=req.problem_set or "adhoc",
                problem_id=req.problem_id,
                level=req.level,
                fit_id=fit_id,
                policy=policy,
            )
        except StoreError as exc:
            self.post(m.Notice(f"not recording this run: {one_line(exc)}", "error"))
            return None

    def _record(self, recorder: RunRecorder | None, event: Event) -> RunRecorder | None:
        from mstui.store import StoreError

        if recorder is None:
            return None
        try:
            recorder.handle(event)
            return recorder
        except StoreError as exc:  # a locked or full database must not stop the run
            self.post(m.Notice(f"stopped recording: {one_line(exc)}", "error"))
            return None

    def _dispatch(self, event: Event, run_id: int | None) -> None:
        from mstui.core.loop import (
            DecisionMade,
            RoundFinished,
            RoundStarted,
            RunFinished,
            TokenStreamed,
        )

        ctx = self._ctx
        assert ctx is not None
        if isinstance(event, TokenStreamed):
            self.tokens.append(event.index, event.text)
        elif isinstance(event, RoundStarted):
            self.tokens.begin(event.index, RoundInfo(event.tags, event.starts_in_thinking))
            self.post(m.RoundBegan(event.index))
        elif isinstance(event, RoundFinished):
            if event.record.finish_reason not in ("cancelled", "error"):
                ctx.history.append(event.record)
            self.post(m.RoundDone(event.record))
            if (slow := self.rates.add(event.record) if self.rates else None) is not None:
                self.post(m.Notice(slow.hint, "warning"))
        elif isinstance(event, DecisionMade):
            if ctx.reviewed is not None and ctx.reviewed[0] == event.decision.round:
                view = ctx.reviewed[1]
            else:
                view = prob_view(ctx.fit, ctx.obs, ctx.history, event.decision, ctx.max_rounds,
                                 ctx.label, ctx.note, ctx.price)
            self.post(m.DecisionReady(event.decision, view))
        elif isinstance(event, RunFinished):
            self.post(
                m.RunDone(
                    run_id,
                    event.reason,
                    event.final_answer,
                    event.final_correct,
                    len(event.rounds),
                    event.error,
                )
            )

    def _review(self, decision: Decision) -> Decision:
        """Called by the loop before a decision takes effect; blocks while the user decides."""
        ctx = self._ctx
        assert ctx is not None
        view = prob_view(ctx.fit, ctx.obs, ctx.history, decision, ctx.max_rounds, ctx.label,
                         ctx.note, ctx.price)
        ctx.reviewed = (decision.round, view)
        previous, prev_belief = ctx.prev_decision, ctx.prev_belief
        ctx.prev_decision, ctx.prev_belief = decision, view.belief
        capped = decision.round + 1 >= ctx.max_rounds
        if self._force is not None:
            forced, self._force = self._force, None
            if forced == "continue" and capped:
                self.post(m.Notice(CAP_NOTICE.format(n=ctx.max_rounds), "warning"))
            elif forced != decision.action:  # agreeing with the policy is no override
                return dataclasses.replace(decision, override=forced)
            else:
                return decision
        if self.to_end:  # `e`: past every breakpoint until the run ends
            return decision
        why = (
            "step mode"
            if self.step_mode
            else hit(
                self.breakpoints, decision, previous, ctx.history[-1], prev_belief, view.belief
            )
        )
        if why is None or self._cancel.is_set():
            return decision
        self.paused = True
        self.post(m.Paused(decision, view, why))
        cmd = self._commands.get()
        while cmd == "continue" and capped:  # no round can follow: say so, keep waiting
            self.post(m.Notice(CAP_NOTICE.format(n=ctx.max_rounds), "warning"))
            cmd = self._commands.get()
        self.paused = False
        if cmd in ("continue", "stop") and cmd != decision.action:
            return dataclasses.replace(decision, override=cmd)  # type: ignore[arg-type]
        if cmd == "run":
            self.step_mode, self.to_end = False, True
        return decision
