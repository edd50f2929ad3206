"""Who may decrypt: DESIGN.md's "one door to plaintext", pinned.

`records.service.open_record` audits before it decrypts. Sealed coding data (code lines,
return reasons) opens through `open_for_item`, which does not audit by itself: each caller
must run after an audited view or use in the same transaction. The callers below were
reviewed for that; a new one fails this test until it is reviewed and added.
"""

from __future__ import annotations

import ast
from pathlib import Path

SERVER = Path(__file__).resolve().parent.parent / "server"

# callee -> the functions (module:function) allowed to call it
REVIEWED = {
    "open_for_item": {"coding.service:get_codes", "billing.service:last_return"},
    "get_codes": {
        "queue.router:api_item",  # after open_record
        "billing.service:claim_data",  # after open_record (billing view)
        "coding.service:submit",  # audited as submit (success or failed)
        "coding.router:codes_fragment",  # after open_record
        "coding.router:qa_item_page",  # after open_record
    },
    "last_return": {"coding.router:codes_fragment"},  # after open_record
}


def _callers() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {name: set() for name in REVIEWED}
    for path in SERVER.rglob("*.py"):
        module = ".".join(path.relative_to(SERVER).with_suffix("").parts)
        tree = ast.parse(path.read_text())
        for func in ast.walk(tree):
            if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(func):
                if isinstance(node, ast.Call):
                    target = node.func
                    name = (
                        target.attr
                        if isinstance(target, ast.Attribute)
                        else getattr(target, "id", None)
                    )
                    if name in found:
                        found[name].add(f"{module}:{func.name}")
    return found


def test_only_reviewed_code_opens_sealed_coding_data() -> None:
    assert _callers() == REVIEWED


def test_only_the_records_service_imports_crypto() -> None:
    importers = {
        str(path.relative_to(SERVER))
        for path in SERVER.rglob("*.py")
        if "records import crypto" in path.read_text()
        or "records.crypto import" in path.read_text()
    }
    assert importers == {"records/service.py"}
