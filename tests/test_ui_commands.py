"""Pilot tests of the command palette, the m/g/p/k keys, κ on the live screen and its chart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.command import CommandPalette

from mstui.config import RunConfig
from mstui.core.backend import Backend
from mstui.engine.scripted import ScriptedBackend
from mstui.store import Store
from mstui.ui.app import MstuiApp, make_app
from mstui.ui.charts import AccuracyChart
from mstui.ui.demo import SCRIPT, demo_store
from mstui.ui.widgets import DecisionPanel
from tests.test_ui_live import SIZE, text_of, wait_for


def factory(config: RunConfig) -> Backend:
    """Scripted text for the default model; the real llama.cpp for a picked GGUF."""
    if config.model:
        from mstui.engine.llama_backend import LlamaBackend

        return LlamaBackend(Path(config.model), n_ctx=512, n_gpu_layers=0)
    return ScriptedBackend(SCRIPT)


def app_at(db: Path, models: Path | None = None, **kw: object) -> MstuiApp:
    return make_app(
        RunConfig(max_rounds=3),
        db_path=db,
        level=2,
        backend_factory=factory,
        models_dir=models or db.parent / "no-models",
        **kw,  # type: ignore[arg-type]
    )


async def palette(pilot, app: MstuiApp, text: str) -> None:  # type: ignore[no-untyped-def]
    """Open the palette, type, wait for the hit list and run the top hit."""
    await pilot.press("ctrl+p")
    await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette))
    await pilot.press(*text)
    await pilot.pause(0.4)  # the palette searches asynchronously
    await pilot.press("enter")
    await wait_for(pilot, lambda: not isinstance(app.screen, CommandPalette))


async def test_palette_sets_strategy_policy_format_and_level(tmp_path: Path) -> None:
    db = tmp_path / "traces.db"
    app = app_at(db)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.worker.backend is not None)
        await palette(pilot, app, "strategy refine")
        assert app.config.strategy == "refine"
        await palette(pilot, app, "policy: none")
        assert app.policy == "none"
        await palette(pilot, app, "prompt format: chat")
        assert app.config.prompt_format == "chat"
        await palette(pilot, app, "problem level: 4")
        assert app.live.picker.level == 4 and app.live.picker.set_name == "gen:L4"
        status = text_of(app.live.query_one("#status"))
        assert "refine/chat" in status and "policy none" in status
        # The settings reach the stored run.
        await pilot.press("n", "r")
        await wait_for(pilot, lambda: not app.worker.busy and len(app.live.decisions) == 1)
        run_id = app.live.run_id
        # Screens are palette entries too.
        await palette(pilot, app, "open traces")
        assert type(app.screen).__name__ == "TracesScreen"
    with Store(db) as store:
        run = store.get_run(run_id)  # type: ignore[arg-type]
    assert (run["strategy"], run["policy"], run["problem_set"]) == ("refine", "none", "gen:L4")


async def test_key_m_lists_models_and_reloads_the_picked_one(
    tmp_path: Path, tiny_gguf: Path
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / "tiny.gguf").write_bytes(tiny_gguf.read_bytes())
    app = app_at(tmp_path / "traces.db", models)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.worker.backend is not None)
        assert app.worker.backend.info.model == "scripted"
        await pilot.press("m")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*"tiny")
        await pilot.pause(0.4)
        await pilot.press("enter")
        await wait_for(
            pilot,
            lambda: app.worker.backend is not None and app.worker.backend.info.model == "tiny.gguf",
            timeout=30,
        )
        assert app.config.model == str(models / "tiny.gguf")
        await wait_for(pilot, lambda: "tiny.gguf" in text_of(app.live.query_one("#status")))
        assert "CPU only" in text_of(app.live.query_one("#status"))


async def test_model_picker_lists_each_model_file_once(tmp_path: Path, tiny_gguf: Path) -> None:
    from textual.command import CommandList

    from mstui.default_model import DEFAULT_MODEL_FILE

    # models/ holds the default model's file (as `make model` places it) and one other; the
    # config names no model, so the current one is the default: it must not appear twice.
    models = tmp_path / "models"
    models.mkdir()
    for name in (DEFAULT_MODEL_FILE, "tiny.gguf"):
        (models / name).write_bytes(tiny_gguf.read_bytes())
    app = app_at(tmp_path / "traces.db", models)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.worker.backend is not None)
        await pilot.press("m")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette))
        hits = app.screen.query_one(CommandList)
        await wait_for(pilot, lambda: hits.option_count == 2)
        await pilot.pause(0.2)  # the palette adds hits asynchronously: no third one comes
        shown = [str(hits.get_option_at_index(i).prompt).splitlines()[0]
                 for i in range(hits.option_count)]
        assert sorted(shown) == [f"Model: {DEFAULT_MODEL_FILE} (current)", "Model: tiny.gguf"]
        await pilot.press("escape")
        # Named by its stem, the same file is still the current one, listed once.
        app.config = RunConfig(model=Path(DEFAULT_MODEL_FILE).stem.lower())
        await pilot.press("m")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette))
        hits = app.screen.query_one(CommandList)
        await wait_for(pilot, lambda: hits.option_count == 2)
        await pilot.pause(0.2)
        assert sum(DEFAULT_MODEL_FILE in str(hits.get_option_at_index(i).prompt)
                   for i in range(hits.option_count)) == 1


async def test_theme_picked_in_the_palette_is_remembered_across_launches(tmp_path: Path) -> None:
    settings = tmp_path / "config" / "mstui" / "settings.json"  # the folder does not exist yet
    app = app_at(tmp_path / "traces.db", settings_path=settings)
    async with app.run_test(size=SIZE) as pilot:
        assert app.theme == "textual-dark"  # nothing saved: Textual's default
        await pilot.press("ctrl+p")  # the palette's own "Change theme" command
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*"theme")
        await pilot.pause(0.4)
        await pilot.press("enter")  # it opens a second palette, of themes
        await pilot.pause(0.4)
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*"nord")
        await pilot.pause(0.4)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.theme == "nord")
    assert json.loads(settings.read_text()) == {"theme": "nord"}
    again = app_at(tmp_path / "traces.db", settings_path=settings)
    async with again.run_test(size=SIZE) as pilot:
        await pilot.pause(0.05)
        assert again.theme == "nord"
    # A broken or stale settings file never stops the app: the default theme is used.
    for text in ("{not json", json.dumps({"theme": "no-such-theme"})):
        settings.write_text(text)
        broken = app_at(tmp_path / "traces.db", settings_path=settings)
        async with broken.run_test(size=SIZE) as pilot:
            await pilot.pause(0.05)
            assert broken.theme == "textual-dark"
    # Without a settings path (tests, snapshots) nothing is read or written.
    plain = app_at(tmp_path / "other.db")
    async with plain.run_test(size=SIZE) as pilot:
        plain.theme = "gruvbox"
        await pilot.pause(0.05)
    assert "no-such-theme" in settings.read_text()


def test_user_settings_path_follows_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mstui.config import user_settings_path

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert user_settings_path() == tmp_path / "mstui" / "settings.json"
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/dir")  # XDG: relative values are ignored
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert user_settings_path() == tmp_path / "home" / ".config" / "mstui" / "settings.json"


async def test_kappa_key_sets_the_markov_price_of_the_next_run(tmp_path: Path) -> None:
    db = tmp_path / "traces.db"
    info = demo_store(db, questions=8)  # a fit for scripted × reanswer: auto picks markov
    app = app_at(db)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.worker.backend is not None)
        await pilot.press("k")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "PriceScreen")
        await pilot.press("escape")  # Esc keeps the old κ
        await wait_for(pilot, lambda: app.screen is app.live)
        assert app.config.price == 0.0
        await pilot.press("k")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "PriceScreen")
        await pilot.press(*"xyz", "enter")  # not a number: the dialog says so and stays
        assert "κ must be" in text_of(app.screen.query_one("#price-error"))
        app.screen.query_one("#price-input").value = "0.0007"  # type: ignore[attr-defined]
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen is app.live)
        assert app.config.price == 0.0007
        assert "next run: κ 0.0007" in text_of(app.live.query_one(DecisionPanel))
        assert "κ 0.0007" in text_of(app.live.query_one("#status"))
        assert not app.live.check_action("step", ())  # step keys: only while running
        await pilot.press("n", "r")
        await wait_for(pilot, lambda: not app.worker.busy and app.live.decisions)
        assert not app.live.check_action("step", ())
        await pilot.pause(0.05)
        d = app.live.decisions[-1]
        assert d.policy == "markov:0.0007" and d.price == 0.0007
        panel = text_of(app.live.query_one(DecisionPanel))
        assert "κ 0.00070" in panel and "next run: κ 0.0007" in panel
        # The chart plots the core's predicted curve and beliefs, as the panel's view has them.
        view, chart = app.live.view, app.live.query_one(AccuracyChart)
        chain = info["fit"].chain
        assert view.belief == d.belief and view.curve
        for n, p in view.curve:
            assert p == chain.accuracy(view.belief, n - view.round)
        assert chart.series["predicted p_n"] == [(float(n), p) for n, p in view.curve]
        assert [q for _, q in chart.series["belief q_t"]] == list(view.beliefs)
        assert len(view.beliefs) == len(app.live.records)
        run_id = app.live.run_id
    with Store(db) as store:
        run = store.get_run(run_id)  # type: ignore[arg-type]
    assert run["settings"]["price"] == 0.0007
