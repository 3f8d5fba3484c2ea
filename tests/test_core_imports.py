"""The core stays headless: importing every core module pulls in no UI, model or storage code."""

import pkgutil
import subprocess
import sys

import mstui.core

FORBIDDEN = ("textual", "llama_cpp", "sqlite3", "sqlite_utils", "_sqlite3", "rich")


def test_core_modules_import_no_ui_model_or_storage() -> None:
    modules = [f"mstui.core.{m.name}" for m in pkgutil.iter_modules(mstui.core.__path__)]
    assert "mstui.core.markov" in modules and "mstui.core.loop" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"core imported: {out.stdout.strip()}"


def test_the_check_itself_detects_a_forbidden_import() -> None:
    # Guard against a check that cannot fail: the same probe sees sqlite3 once it is imported.
    code = "import sqlite3, sys; print('sqlite3' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
