"""Who may decrypt: DESIGN.md's "one door to plaintext", pinned by type.

`records.service` is the only module that opens sealed data with `records/crypto.py`
(`records.keys` imports it to re-wrap and destroy data keys, never to open). It opens the record
itself only after the view is audited (`open_record`, and `open_record_in_one_trip`, whose
one statement writes the view's audit row with the read; both through `_opened`), and it
hands other domains the key to an item's sealed fields (code lines, QA and return reasons)
only as an `ItemKey`, which its audited doors mint: those two (a view) and `open_for_use` (a
use such as submit). So a function that opens sealed item data must take an `ItemKey`, and no caller
can get one without an audit row in its transaction. No reviewed list of callers to keep.
"""

from __future__ import annotations

import ast
import inspect
import typing
from pathlib import Path

import pytest
from sqlmodel import select

from server.audit.service import Action
from server.auth.principal import system_principal
from server.models import AuditEvent
from server.records import service as records_service
from server.records.service import ItemKey
from tests.support.factories import make_encounter

SERVER = Path(__file__).resolve().parent.parent / "server"


def _modules() -> dict[str, ast.Module]:
    return {
        ".".join(p.relative_to(SERVER).with_suffix("").parts): ast.parse(p.read_text())
        for p in SERVER.rglob("*.py")
    }


def test_only_the_records_service_imports_crypto() -> None:
    importers = set()
    for name, tree in _modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module in ("server.records", "server"):
                if any(a.name in ("crypto", "records") for a in node.names):
                    importers.add(name)
            if isinstance(node, ast.ImportFrom) and node.module == "server.records.crypto":
                importers.add(name)
            if isinstance(node, ast.Import) and any("crypto" in a.name for a in node.names):
                importers.add(name)
    # records.keys re-wraps and destroys data keys; it never opens a sealed field (below).
    assert importers == {"records.service", "records.keys"}
    keys_calls = {
        node.func.attr
        for node in ast.walk(_modules()["records.keys"])
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    }
    assert "open_sealed" not in keys_calls


def test_the_key_to_sealed_item_data_is_minted_only_by_the_audited_doors() -> None:
    """Only the audited doors build an ItemKey (the views through their shared open half,
    `_opened`, which only they call); nothing else touches the mint."""
    minted_in = set()
    for name, tree in _modules().items():
        for func in ast.walk(tree):
            if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(func):
                if isinstance(node, ast.Name) and node.id == "_MINT":
                    minted_in.add(f"{name}:{func.name}")
                if isinstance(node, ast.Attribute) and node.attr in ("_MINT", "_key"):
                    assert name == "records.service", f"{name}:{func.name} reaches into ItemKey"
    assert minted_in == {
        "records.service:_opened",  # the open half of the two audited views (below)
        "records.service:open_for_use",
        "records.service:__init__",  # ItemKey's own check
    }
    callers = {
        f"{name}:{func.name}"
        for name, tree in _modules().items()
        for func in ast.walk(tree)
        if isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef)
        for node in ast.walk(func)
        if isinstance(node, ast.Name | ast.Attribute)
        and (node.id if isinstance(node, ast.Name) else node.attr) == "_opened"
    }
    assert callers == {
        "records.service:open_record",
        "records.service:open_record_in_one_trip",
    }
    with pytest.raises(TypeError):
        ItemKey(mint=object(), work_item_id=1, key=b"\0" * 32, data_key_id=1)


def test_there_is_no_unaudited_opener() -> None:
    """The old `open_for_item` (decrypt without an ItemKey) is gone, and stays gone."""
    assert not hasattr(records_service, "open_for_item")
    public = {
        n
        for n, f in vars(records_service).items()
        if inspect.isfunction(f) and f.__module__ == records_service.__name__ and n[0] != "_"
    }
    returns_key = {
        n
        for n in public
        if "ItemKey" in str(typing.get_type_hints(getattr(records_service, n)).get("return"))
        or "OpenedRecord" in str(typing.get_type_hints(getattr(records_service, n)).get("return"))
    }
    assert returns_key == {"open_record", "open_record_in_one_trip", "open_for_use"}


def test_functions_that_open_sealed_item_fields_take_an_item_key() -> None:
    """Every `.open(...)` of sealed bytes outside records is a call on an ItemKey parameter."""
    for name, tree in _modules().items():
        if name == "records.service":
            continue
        for func in ast.walk(tree):
            if not isinstance(func, ast.FunctionDef):
                continue
            params = {
                a.arg: ast.unparse(a.annotation) if a.annotation else ""
                for a in func.args.args + func.args.kwonlyargs
            }
            for node in ast.walk(func):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "open"
                    and any(k.arg == "sealed" for k in node.keywords)
                ):
                    owner = ast.unparse(node.func.value)
                    assert params.get(owner) == "ItemKey", f"{name}:{func.name} opens {owner}"


def test_open_for_use_writes_its_audit_row_before_handing_out_the_key(session) -> None:
    """(open_record's audit-before-decrypt is pinned in test_records_open.)"""
    item_id = make_encounter()
    key = records_service.open_for_use(
        session,
        actor=system_principal("test"),
        work_item_id=item_id,
        action=Action.submit,
        purpose="TREAT",
    )
    events = session.exec(
        select(AuditEvent).where(AuditEvent.work_item_id == item_id, AuditEvent.action == "submit")
    ).all()
    assert len(events) == 1
    assert events[0].patient_id is not None
    assert events[0].mrn_index
    assert key.work_item_id == item_id
