"""Real chat templates on the real llama.cpp: tiny GGUFs carrying R1-distill (Llama and Qwen), QwQ,
Qwen3, Llama 3, ChatML and Gemma templates render, tokenize with one BOS, pick the right profile,
continue inside the thinking for `wait`, and reuse the KV cache across rounds."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from mstui.core.backend import GenSettings
from mstui.core.loop import RoundFinished, RoundStarted, run_refinement
from mstui.core.policies import parse_policy
from mstui.core.profiles import detect_profile
from mstui.core.prompts import Prompter, load_format
from mstui.core.reasoning import prompt_opens_thinking
from mstui.engine import llama_backend
from mstui.engine.llama_backend import LlamaBackend
from tests.gguf_factory import write_tiny_llama
from tests.templates import TEMPLATES, RealTemplate
from tests.test_cli_run import assert_one_line_error, mstui

QUESTION = "What is 2 + 2?"


@pytest.fixture(scope="module", params=sorted(TEMPLATES))
def model(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    t: RealTemplate = TEMPLATES[request.param]
    path = write_tiny_llama(tmp_path_factory.mktemp("tpl") / f"{t.key}.gguf",
                            chat_template=t.text(), bos=t.bos, eos=t.eos, specials=t.specials,
                            add_bos=t.add_bos, n_ctx=4096)
    backend = LlamaBackend(path, n_ctx=2048)
    yield t, backend
    backend.close()


def _prompter(t: RealTemplate, backend: LlamaBackend, strategy: str) -> Prompter:
    profile = detect_profile(backend.chat_template, backend.info.model)
    fmt = load_format(profile.prompt_format if profile.reasoning else "chat")
    return Prompter(fmt, strategy, backend.render_chat, tags=profile.tags,
                    use_system=profile.use_system)


def _play(t: RealTemplate, backend: LlamaBackend, strategy: str, *, rounds: int,
          max_tokens: int) -> list[object]:
    """Every event of a greedy run of `rounds` rounds with the template's profile."""
    return list(run_refinement(QUESTION, backend=backend, prompter=_prompter(t, backend, strategy),
                               policy=parse_policy(f"fixed:{rounds - 1}", None), max_rounds=rounds,
                               settings=GenSettings(max_tokens=max_tokens, temperature=0.0)))


def test_profile_from_the_real_template(model) -> None:  # type: ignore[no-untyped-def]
    t, backend = model
    profile = detect_profile(backend.chat_template, backend.info.model)
    assert profile.name == t.profile and profile.reasoning == t.reasoning


def test_prompt_tokenizes_with_exactly_one_bos(model) -> None:  # type: ignore[no-untyped-def]
    t, backend = model
    prompter = _prompter(t, backend, "reanswer")
    prompt = prompter.prompt(QUESTION, [])
    assert QUESTION in prompt and not prompt.startswith(t.bos)
    tokens = backend.tokenize(prompt)
    bos = backend.llm.token_bos()
    assert tokens.count(bos) == (1 if t.add_bos else 0)
    if t.add_bos:
        assert tokens[0] == bos
    # Each special token of the template is one token, as in the real vocabulary.
    for special in t.specials:
        if special in prompt:
            ids = backend.llm.tokenize(special.encode(), add_bos=False, special=True)
            assert len(ids) == 1
    llama_backend._LOG_LINES.clear()
    list(backend.stream(prompt, GenSettings(max_tokens=2, temperature=0.0),
                        __import__("threading").Event()))
    assert not any("2 BOS" in line or "two BOS" in line for line in llama_backend._LOG_LINES)


def test_generation_prompt_and_thinking(model) -> None:  # type: ignore[no-untyped-def]
    t, backend = model
    profile = detect_profile(backend.chat_template, backend.info.model)
    prompt = _prompter(t, backend, "reanswer").prompt(QUESTION, [])
    opens = prompt_opens_thinking(prompt, profile.tags)
    # R1-distill and QwQ open <think> in the prompt; Qwen3 lets the model write it.
    assert opens == (t.key in ("r1-distill-llama", "r1-distill-qwen", "qwq"))
    if t.profile == "deepseek-r1":
        assert "You are" not in prompt  # no system prompt, as DeepSeek advises
        assert prompt.endswith("<｜Assistant｜><think>\n")


def test_wait_continues_inside_the_thinking_and_reuses_the_cache(model) -> None:  # type: ignore[no-untyped-def]
    t, backend = model
    events = _play(t, backend, "wait", rounds=3, max_tokens=12)
    started = [e for e in events if isinstance(e, RoundStarted)]
    rounds = [e.record for e in events if isinstance(e, RoundFinished)]
    assert len(rounds) == 3
    for prev, cur in itertools.pairwise(rounds):
        assert cur.prompt.startswith(prev.prompt)
        # Everything of the previous round is in the KV cache except what was never evaluated.
        assert cur.cached_tokens >= prev.prompt_tokens - 1
        # Only the text added since the previous prompt (its response and the cue) is evaluated.
        added = len(backend.llm.tokenize(cur.prompt[len(prev.prompt):].encode(), add_bos=False,
                                         special=True))
        assert cur.prompt_tokens - cur.cached_tokens <= added + 2
    if t.key in ("r1-distill-llama", "r1-distill-qwen", "qwq"):
        # The random model never closes its thinking: each round is cut inside it (no answer),
        # and the next continues the same thinking after "Wait,".
        assert all(r.truncated and r.answer is None for r in rounds)
        assert all(s.starts_in_thinking for s in started)
        assert rounds[1].prompt.endswith("\nWait,")
        assert "</think>" not in rounds[2].prompt.split("<think>")[-1]


def test_reanswer_rounds_share_the_prompt_prefix(model) -> None:  # type: ignore[no-untyped-def]
    t, backend = model
    events = _play(t, backend, "reanswer", rounds=2, max_tokens=4)
    rounds = [e.record for e in events if isinstance(e, RoundFinished)]
    assert rounds[1].cached_tokens >= 3  # at least BOS/the first turn's opening is reused
    assert rounds[1].cached_tokens < rounds[1].prompt_tokens


def test_unrenderable_template_is_one_line(tmp_path: Path) -> None:
    from mstui.engine.templates import TemplateError

    path = write_tiny_llama(tmp_path / "bad.gguf", chat_template="{% for m in messages %}{{ m.x.y "
                            "}}{% endfor %}<think></think>")
    backend = LlamaBackend(path, n_ctx=256)
    with pytest.raises(TemplateError, match=r"cannot be rendered .*--format fewshot"):
        backend.render_chat([{"role": "user", "content": "hi"}])
    backend.close()
    # A template that does not even parse stops llama-cpp-python's loader: one line from the CLI.
    broken = write_tiny_llama(tmp_path / "broken.gguf", chat_template="{% for m in messages %}")
    proc = mstui("run", "--model", str(broken), "--question", "hi", "--no-store")
    assert_one_line_error(proc, "chat template in broken.gguf does not parse")
    # Not even --format fewshot loads it in-process: the error says so, and does not offer it.
    proc = mstui("run", "--model", str(broken), "--question", "hi", "--no-store",
                 "--format", "fewshot")
    assert_one_line_error(proc, "does not parse", "whatever --format", "fix tokenizer")
    # One that parses but fails on these messages: the chat format refuses in one line, too.
    proc = mstui("run", "--model", str(tmp_path / "bad.gguf"), "--question", "hi", "--no-store",
                 "--format", "chat", "--max-tokens", "2")
    assert_one_line_error(proc, "cannot be rendered", "--format fewshot")


def test_cli_picks_the_reasoning_profile_and_keeps_what_the_user_set(tmp_path: Path) -> None:
    from mstui.store import Store

    t = TEMPLATES["r1-distill-qwen"]
    path = write_tiny_llama(tmp_path / "DeepSeek-R1-Distill-Qwen-tiny.gguf", chat_template=t.text(),
                            bos=t.bos, eos=t.eos, specials=t.specials, add_bos=t.add_bos,
                            n_ctx=32768)
    listed = mstui("models", str(path), "--models-dir", str(tmp_path / "none"))
    assert listed.returncode == 0, listed.stderr
    assert "profile deepseek-r1: thinks in <think>…</think>" in listed.stdout
    assert "<｜Assistant｜>" in listed.stdout  # why it was picked
    db = tmp_path / "t.db"
    proc = mstui("run", "--model", str(path), "--question", QUESTION, "--max-rounds", "1",
                 "--max-tokens", "6", "--db", str(db))
    assert proc.returncode == 0, proc.stderr
    assert "profile: deepseek-r1" in proc.stdout
    with Store(db) as store:
        run = store.list_runs(limit=1)[0]
        settings = store.get_run(run["id"])["settings"]
        rounds = store.rounds_of(run["id"])
    assert settings["profile"] == "deepseek-r1" and settings["prompt_format"] == "reasoning"
    assert settings["max_tokens"] == 6  # set by the user: kept
    assert settings["temperature"] == 0.6 and settings["min_p"] == 0.0  # the family's advice
    assert settings["ctx"] == 16384  # the profile's context, within the model's 32768
    assert rounds[0].prompt.endswith("<｜Assistant｜><think>\n") and rounds[0].truncated
    plain = mstui("run", "--model", str(path), "--question", QUESTION, "--max-rounds", "1",
                  "--max-tokens", "4", "--format", "fewshot", "--profile", "plain", "--no-store")
    assert plain.returncode == 0 and "profile: plain" in plain.stdout


def test_template_refusal_names_the_template_and_the_remedy(tmp_path: Path) -> None:
    # QA #5: the template's raise_exception text alone ("no system role") said neither.
    refusing = write_tiny_llama(
        tmp_path / "refuses.gguf",
        chat_template="{{ raise_exception('no system role') }}<think></think>")
    proc = mstui("run", "--model", str(refusing), "--question", "hi", "--no-store",
                 "--format", "chat", "--max-tokens", "2")
    assert_one_line_error(proc, "the chat template refuses these messages (no system role)",
                          "--format fewshot")


@pytest.mark.parametrize(("name", "args"), [
    ("notemplate.gguf", ["--format", "chat"]),
    ("notemplate.gguf", ["--format", "reasoning"]),
    # Named like R1, so its profile asks for the reasoning format: no foreign ChatML instead.
    ("DeepSeek-R1-Distill-Qwen-7B-notmpl.gguf", []),
])
def test_a_gguf_without_a_chat_template_gets_no_foreign_one(tmp_path: Path, name: str,
                                                            args: list[str]) -> None:
    path = write_tiny_llama(tmp_path / name, chat_template=None)
    db = tmp_path / "t.db"
    proc = mstui("run", "--model", str(path), "--question", QUESTION, "--max-tokens", "4",
                 "--max-rounds", "1", *args, db=db)
    assert_one_line_error(proc, f"{name} has no chat template", "use --format fewshot")
    assert not db.exists() or "im_start" not in db.read_bytes().decode("utf-8", "replace")
    fewshot = mstui("run", "--model", str(path), "--question", QUESTION, "--max-tokens", "4",
                    "--max-rounds", "1", "--format", "fewshot", "--no-store")
    assert fewshot.returncode == 0, fewshot.stderr


@pytest.fixture(scope="module")
def r1_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    t = TEMPLATES["r1-distill-qwen"]
    return write_tiny_llama(tmp_path_factory.mktemp("r1") / "r1-distill-qwen.gguf",
                            chat_template=t.text(), bos=t.bos, eos=t.eos, specials=t.specials,
                            add_bos=t.add_bos, n_ctx=32768)


@pytest.mark.parametrize(("args", "needles"), [
    # QA #7: a few-shot prompt never opens the thinking, so the budget would never count.
    (["--format", "fewshot", "--thinking-budget", "10", "--max-tokens", "40"],
     ["--thinking-budget closes the model's thinking", "--format reasoning"]),
    # QA #10: the budget must be reachable: below --max-tokens, and room after the prompt.
    (["--thinking-budget", "10000", "--max-tokens", "500"],
     ["--thinking-budget 10000 is not below --max-tokens 500"]),
    (["--thinking-budget", "100", "--ctx", "150", "--max-tokens", "120"],
     ["--thinking-budget 100 do not fit the 150-token context", "lower --thinking-budget to "
      "at most"]),
    # QA #17: a context past the model's own.
    (["--ctx", "999999"], ["--ctx 999999 is above r1-distill-qwen.gguf's 32768-token context",
                           "use at most --ctx 32768"]),
])
def test_settings_that_cannot_act_are_refused(r1_gguf: Path, args: list[str],
                                              needles: list[str]) -> None:
    proc = mstui("run", "--model", str(r1_gguf), "--question", QUESTION, "--max-rounds", "1",
                 "--no-store", *args)
    assert_one_line_error(proc, *needles)


def test_profile_line_shows_the_settings_used(r1_gguf: Path, tmp_path: Path) -> None:
    # QA #8: the line said "format reasoning, ctx 16384, T 0.6 … top-k 40" whatever was set.
    proc = mstui("run", "--model", str(r1_gguf), "--temperature", "0.2", "--top-k", "7", "--ctx",
                 "3000", "--format", "chat", "--question", QUESTION, "--max-rounds", "1",
                 "--max-tokens", "4", "--no-store")
    assert proc.returncode == 0, proc.stderr
    line = next(x for x in proc.stdout.splitlines() if x.startswith("profile: "))
    assert "format chat, no system prompt, 4 tok/round, ctx 3000, T 0.2" in line
    assert "top-k 7" in line and "yours: format, ctx, tok/round, T, top-k" in line
    named = mstui("run", "--model", str(r1_gguf), "--profile", "qwen3", "--question", QUESTION,
                  "--max-rounds", "1", "--max-tokens", "4", "--no-store")
    assert named.returncode == 0, named.stderr
    assert "(chosen with --profile)" in named.stdout and "()" not in named.stdout
    # The reasoning format sends no system prompt, whichever family (QwQ's and Qwen3's too).
    assert "format reasoning, no system prompt" in named.stdout


def test_models_caps_the_round_budget_by_a_small_context(tmp_path: Path) -> None:
    t = TEMPLATES["r1-distill-qwen"]
    small = write_tiny_llama(tmp_path / "r1small.gguf", chat_template=t.text(), bos=t.bos,
                             eos=t.eos, specials=t.specials, add_bos=t.add_bos, n_ctx=2048)
    listed = mstui("models", str(small), "--models-dir", str(tmp_path / "none"))
    assert listed.returncode == 0, listed.stderr
    assert "1024 tok/round, ctx 2048" in listed.stdout  # not "4096 tok/round, ctx 16384"


def test_a_bos_text_that_opens_the_first_turn_is_kept_where_no_bos_is_added(
        default_model: Path) -> None:
    # SmolLM2's BOS text is `<|im_start|>` and its tokenizer adds no BOS (add_bos_token false):
    # dropping the "BOS" cut the system turn's opening marker, so the model saw "system\n…".
    backend = LlamaBackend(default_model, n_ctx=512)
    try:
        assert not backend.llm._model.add_bos_token()
        prompt = backend.render_chat([{"role": "system", "content": "Be brief."},
                                      {"role": "user", "content": QUESTION}])
        assert prompt.startswith("<|im_start|>system\nBe brief.<|im_end|>")
        tokens = backend.tokenize(prompt)
        start = backend.llm.token_bos()
        assert tokens[0] == start and tokens.count(start) == prompt.count("<|im_start|>") == 3
    finally:
        backend.close()
    # Where the tokenizer does add the BOS, a leading BOS text is still dropped, not doubled.
    from mstui.engine.templates import render_chat_template

    template = "{{ bos_token }}{% for m in messages %}[{{ m.content }}]{% endfor %}"
    turns = [{"role": "user", "content": "hi"}]
    assert render_chat_template(template, turns, bos_token="<s>") == "[hi]"
    assert render_chat_template(template, turns, bos_token="<s>", bos_added=False) == "<s>[hi]"
