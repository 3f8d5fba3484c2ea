"""The trace store: every run, round and decision in SQLite (DESIGN §5)."""

from mstui.store.errors import AlreadyClaimed, StoreError
from mstui.store.export import export_runs, import_jsonl
from mstui.store.query import RUN_STATUSES, LabelledRound, default_db_path
from mstui.store.schema import SCHEMA_VERSION
from mstui.store.store import Store

__all__ = [
    "RUN_STATUSES",
    "SCHEMA_VERSION",
    "AlreadyClaimed",
    "LabelledRound",
    "Store",
    "StoreError",
    "default_db_path",
    "export_runs",
    "import_jsonl",
]
