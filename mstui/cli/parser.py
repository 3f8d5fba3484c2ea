"""The argument parser: every option with its help text, errors on one line."""

from __future__ import annotations

import argparse
import importlib
import math
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from mstui.config import DEFAULT_MAX_ROUNDS, PROFILE_SETTINGS, RunConfig, default_threads
from mstui.core.backend import GenSettings
from mstui.core.profiles import PLAIN
from mstui.core.prompts import FORMATS, STRATEGIES

POLICY_HELP = (
    "stopping policy: fixed (run to --max-rounds), fixed:N (N re-answers after the first), "
    "none (first answer only), repeat (stop when the answer repeats), markov[:PRICE] (the live "
    "MarkovScale rule, needs a fit; uses the fit's mixture of chains when it won), "
    "mixture[:PRICE] (the same rule under the mixture), gate (MarkovScale gating, needs a fit), "
    "oracle (stop at the "
    "first correct round, needs --gold)"
)


def ranged(kind: type[int] | type[float], lo: float, hi: float, *, lo_open: bool = False,
           hi_open: bool = False) -> Callable[[str], Any]:
    """An argparse type: a number of `kind` within [lo, hi] (ends open where asked). Every
    numeric option uses one, so an out-of-range or non-finite value is one line, never an
    OverflowError from SQLite or llama.cpp later."""
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not math.isfinite(value) or value < lo or value > hi or (lo_open and value == lo) \
                or (hi_open and value == hi):
            left, right = "(" if lo_open else "[", ")" if hi_open else "]"
            ends = (f"{int(lo)}, {int(hi)}" if kind is int else f"{lo:g}, {hi:g}")
            raise argparse.ArgumentTypeError(f"{text} is out of range {left}{ends}{right}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


class OneLineParser(argparse.ArgumentParser):
    """argparse prints usage plus the error; users asked for one line that says what to do."""

    def error(self, message: str) -> NoReturn:
        print(f"mstui: error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(2)


def add_model_options(p: argparse.ArgumentParser) -> None:
    """Options that pick and load a model."""
    g = p.add_argument_group("model")
    g.add_argument("--model", metavar="PATH|NAME",
                   help="a .gguf path, or a file name in models/ (default: the embedded "
                        "SmolLM2-135M-Instruct Q4_1); with --backend openai, the server's model "
                        "name (default: the first it lists)")
    g.add_argument("--backend", choices=("llama", "openai"), default="llama",
                   help="llama: llama.cpp in this process (default); openai: any "
                        "OpenAI-compatible server (llama-server, vLLM, SGLang, llama_cpp.server)")
    g.add_argument("--base-url", metavar="URL",
                   help="the server's API root for --backend openai, e.g. http://127.0.0.1:8080/v1")
    g.add_argument("--api-key", metavar="KEY", default=None,
                   help="API key for --backend openai (default: $OPENAI_API_KEY, else none)")
    g.add_argument("--ctx", type=ranged(int, 16, 1 << 24), metavar="N",
                   help="context window in tokens (default: the profile's: the model's, at most "
                        "4096, or 16384 for a reasoning model)")
    g.add_argument("--gpu-layers", type=ranged(int, -1, 100_000), default=-1, metavar="N",
                   help="layers to offload to the GPU; -1 = all (default), 0 = CPU only")
    g.add_argument("--threads", type=ranged(int, 1, 1024), metavar="N",
                   help="CPU threads for llama.cpp (default: half the usable cores, at least "
                        f"1: {default_threads()} here. Every core collapses when other work "
                        "shares them: on 2 busy cores, 2 threads ran 2.5-14x slower than 1. A "
                        "round far below the model's measured tok/s is said, with this option)")


def add_db_option(p: argparse.ArgumentParser) -> None:
    """--db, with the MSTUI_DB environment variable as its default."""
    p.add_argument("--db", metavar="PATH", default=None,
                   help="trace database (default: $MSTUI_DB, else ./traces.db)")


def add_run_options(p: argparse.ArgumentParser, *, policy_default: str = "fixed") -> None:
    """Options of one refinement run (run, sweep and the TUI share them)."""
    add_db_option(p)
    add_model_options(p)
    g = p.add_argument_group("refinement")
    g.add_argument("--strategy", choices=STRATEGIES, default="reanswer",
                   help="how later rounds are asked: reanswer (previous final answer only, "
                        "default), refine (previous full response), wait (continue after 'Wait,')")
    g.add_argument("--format", dest="prompt_format", choices=FORMATS, default=None,
                   help="prompt format: fewshot (plain completion with worked examples, best for "
                        "small models), chat (the GGUF's own chat template) or reasoning (that "
                        "template, no system prompt, \\boxed answers); default: the profile's "
                        "(fewshot, or reasoning for a reasoning model)")
    g.add_argument("--profile", default="auto", metavar="NAME",
                   help="model profile: auto (default: detected from the chat template's think "
                        "tags, see `mstui models`), plain, deepseek-r1, qwq, qwen3, reasoning")
    g.add_argument("--thinking-budget", type=ranged(int, 1, 10_000_000), metavar="N", default=None,
                   help="reasoning models: past N thinking tokens in a round, close the "
                        "thinking and ask for the final answer (s1 budget forcing; default off)")
    g.add_argument("--policy", default=policy_default, metavar="SPEC",
                   help=POLICY_HELP + (" (default: auto = markov when a fit exists for the "
                                       "model and strategy, else fixed)"
                                       if policy_default == "auto" else " (default: fixed)"))
    g.add_argument("--price", type=ranged(float, 0.0, 1.0), default=0.0, metavar="KAPPA",
                   help="markov policy: accuracy you would trade for one token (default 0: "
                        "continue whenever one more round is expected to help)")
    g.add_argument("--fit", type=ranged(int, 1, 2**62), default=None, metavar="ID",
                   dest="fit_id",
                   help="markov/gate: use this stored fit (its id as `mstui fit` prints it; "
                        "default: this problem set's fit, else the fit of the model and "
                        "strategy with the most data; the choice and its reason are printed)")
    g.add_argument("--allow-sparse-fit", action="store_true",
                   help="markov/gate: use a fit even when a rate rests on fewer than 5 "
                        "transitions (it is then the prior; refused by default)")
    g.add_argument("--max-rounds", type=ranged(int, 1, 1000), default=DEFAULT_MAX_ROUNDS,
                   metavar="N", help="cap on total rounds, the first answer included (default "
                                     f"{DEFAULT_MAX_ROUNDS}, the same for run, sweep and the TUI)")
    s = p.add_argument_group("sampling")
    s.add_argument("--max-tokens", type=ranged(int, 1, 10_000_000), default=None, metavar="N",
                   help="tokens generated per round at most (default: the profile's, 256 or "
                        "4096 for a reasoning model)")
    s.add_argument("--temperature", type=ranged(float, 0.0, 5.0), default=None, metavar="T",
                   help="sampling temperature (default: the profile's, 0.7 or 0.6 for a "
                        "reasoning model; 0 = greedy)")
    s.add_argument("--top-p", type=ranged(float, 0.0, 1.0, lo_open=True), default=None, metavar="P",
                   help="nucleus sampling (default: the profile's, 0.95)")
    s.add_argument("--top-k", type=ranged(int, 0, 1_000_000), default=None, metavar="K",
                   help="top-k sampling, 0 = off (default: the profile's, 40; Qwen3 20)")
    s.add_argument("--min-p", type=ranged(float, 0.0, 1.0, hi_open=True), default=None, metavar="P",
                   help="min-p sampling (default: the profile's, 0.05; 0 for reasoning models)")
    s.add_argument("--seed", type=ranged(int, 0, 2**32 - 1), default=0,
                   help="sampling seed (default 0); each round of each question samples with "
                        "its own seed derived from this one, the question and the round")
    s.add_argument("--logprobs", action="store_true",
                   help="record log-probabilities of answer tokens (loads the model with "
                        "logits_all=True: slower, more memory)")


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """A validated RunConfig from parsed options; unset profile settings take PLAIN's values
    until the model's profile is applied (RunConfig.with_profile)."""
    given = {name: getattr(args, name, None) for name in PROFILE_SETTINGS}
    explicit = frozenset(name for name, value in given.items() if value is not None)
    plain = GenSettings(max_tokens=PLAIN.max_tokens, temperature=PLAIN.temperature,
                        top_p=PLAIN.top_p, top_k=PLAIN.top_k, min_p=PLAIN.min_p)
    gen = GenSettings(
        max_tokens=plain.max_tokens if args.max_tokens is None else args.max_tokens,
        temperature=plain.temperature if args.temperature is None else args.temperature,
        top_p=plain.top_p if args.top_p is None else args.top_p,
        top_k=plain.top_k if args.top_k is None else args.top_k,
        min_p=plain.min_p if args.min_p is None else args.min_p,
        seed=args.seed, logprobs=args.logprobs)
    return RunConfig(
        model=args.model,
        backend=args.backend,
        base_url=args.base_url,
        api_key=args.api_key or os.environ.get("OPENAI_API_KEY"),
        strategy=args.strategy,
        prompt_format=args.prompt_format or PLAIN.prompt_format,
        profile=args.profile,
        thinking_budget=args.thinking_budget,
        explicit=explicit,
        policy="fixed" if args.policy == "auto" else args.policy,
        max_rounds=args.max_rounds,
        price=args.price,
        fit_id=args.fit_id,
        allow_sparse_fit=args.allow_sparse_fit,
        ctx=args.ctx,
        gpu_layers=args.gpu_layers,
        threads=args.threads,
        logprobs=args.logprobs,
        gen=gen,
    ).validate()


def lazy(module: str, name: str) -> Callable[[argparse.Namespace], int]:
    """A handler that imports its module when called, so `mstui` draws its first frame fast
    (the run path pulls in scipy and the store: most of a second)."""

    def handler(args: argparse.Namespace) -> int:
        code: int = getattr(importlib.import_module(module), name)(args)
        return code

    return handler


def build_parser() -> argparse.ArgumentParser:
    """`mstui [options]` opens the TUI; `mstui COMMAND --help` explains each command."""
    parser = OneLineParser(
        prog="mstui",
        description="Watch, step through and tune sequential inference-time scaling of a local "
                    "LLM: a model answers, re-answers round after round, and a two-state Markov "
                    "chain (MarkovScale) says after each round whether one more is worth it. "
                    "Without a command, opens the terminal UI.",
    )
    parser.add_argument("--version", action="version", version="mstui 0.1.0")
    tui = parser.add_argument_group("terminal UI")
    tui.add_argument("--question", metavar="TEXT", help="start with this question typed in")
    tui.add_argument("--problems", metavar="NAME|FILE", default=None,
                     help="where `n` (next problem) draws from: gen (default), gen:L1 … gen:L5, "
                          "or a JSONL file")
    tui.add_argument("--level", type=int, choices=range(1, 6), metavar="1-5",
                     help="level of generated problems (default: all levels)")
    add_run_options(parser, policy_default="auto")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=OneLineParser)

    run = sub.add_parser("run", help="answer one question headless, streaming each round",
                         description="Answer one question and re-answer it round after round, "
                                     "streaming every round to the terminal.")
    run.add_argument("--question", required=True, metavar="TEXT", help="the question to answer")
    run.add_argument("--gold", metavar="X",
                     help="the correct answer, to mark each round right or wrong")
    run.add_argument("--json", action="store_true",
                     help="print one JSON object per round instead of streaming text, "
                          "then a last one with the stored run id, the final answer and why "
                          "the run stopped")
    run.add_argument("--no-store", action="store_true",
                     help="do not record the run in the trace database")
    add_run_options(run)
    run.set_defaults(handler=lazy("mstui.cli.run_cmd", "cmd_run"))

    models = sub.add_parser("models", help="list GGUF models and whether a GPU can be used",
                            description="List every GGUF in models/ (and PATHs given) with size, "
                                        "architecture, quantization and context length.")
    models.add_argument("paths", nargs="*", metavar="PATH", help="extra .gguf files to describe")
    models.add_argument("--models-dir", default="models", metavar="DIR",
                        help="where models are looked for (default: models)")
    models.add_argument("--json", action="store_true", help="print JSON instead of a table")
    models.set_defaults(handler=lazy("mstui.cli.models_cmd", "cmd_models"))

    from mstui.cli import eval_cmd, fit_cmd, sweep_cmd, traces_cmd

    for command in (sweep_cmd, fit_cmd, traces_cmd, eval_cmd):
        command.register(sub)
    return parser
