"""Helpers for the coding and billing tests: a coder holding an item, codes, pyx12."""

from __future__ import annotations

import io
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from tests.support.factories import Account, make_encounter, make_user, sign_in, update_user

GOOD_CODES: dict[str, Any] = {
    "diagnoses": [{"code": "E11.9"}, {"code": "I10"}, {"code": "J45.909"}],
    "procedures": [
        {
            "code": "99213",
            "system": "CPT",
            "modifiers": ["25"],
            "units": 1,
            "dx_pointers": [1, 2],
            "charge": 125.0,
        }
    ],
}


@dataclass
class Held:
    """A signed-in coder and the item leased to them."""

    client: TestClient
    account: Account
    item_id: int


def coder_with_item(
    make_client: Any, username: str = "coder1", *, in_training: bool = False, **encounter: Any
) -> Held:
    """Make an encounter and a coder of its queue; the coder claims it through the API."""
    item_id = make_encounter(**encounter)
    account = make_user(username, "coder", queues=["default"])
    if in_training:
        update_user(username, in_training=True)
    client = make_client()
    sign_in(client, account)
    r = client.post("/api/v1/work/next", json={})
    assert r.status_code == 200, r.text
    assert r.json()["id"] == item_id
    return Held(client, account, item_id)


def signed_in(make_client: Any, username: str, *roles: str) -> TestClient:
    """A client signed in as a new user holding `roles`."""
    client = make_client()
    sign_in(client, make_user(username, *roles))
    return client


def pyx12_accepts(text: str) -> tuple[bool, str]:
    """Run pyx12's validator over an X12 text: (passed, what it logged)."""
    import pyx12.params
    import pyx12.x12n_document

    log = io.StringIO()
    handler = logging.StreamHandler(log)
    logger = logging.getLogger("pyx12")
    logger.addHandler(handler)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "claim.x12"
            path.write_text(text, encoding="ascii")  # X12 is ASCII: fails loudly if not
            ok = pyx12.x12n_document.x12n_document(
                param=pyx12.params.params(),
                src_file=str(path),
                fd_997=io.StringIO(),
                fd_html=None,
                fd_json=None,
            )
    finally:
        logger.removeHandler(handler)
    return bool(ok), log.getvalue()


def item_key(session: Any, work_item_id: int) -> Any:
    """The key to an item's sealed fields, as a test reads them (an audited use, like submit)."""
    from server.audit.service import Action
    from server.auth.principal import system_principal
    from server.records import service as records_service

    return records_service.open_for_use(
        session,
        actor=system_principal("test"),
        work_item_id=work_item_id,
        action=Action.view_record,
        purpose="HOPERAT",
        detail="test read",
    )


def saved_codes(session: Any, work_item_id: int) -> Any:
    """The item's stored code lines, opened from their sealed value."""
    from server.coding import service as coding_service

    return coding_service.get_codes(session, key=item_key(session, work_item_id))
