"""`chartdesk demo`: prepare the embedded default with demo users and sample charts."""

from __future__ import annotations

import json
import os
from pathlib import Path

from sqlmodel import select

from server.auth import service as auth_service
from server.config import get_settings
from server.db import session_scope
from server.migrate import upgrade
from server.models import User
from server.queue import service as queue_service
from server.records.demo import DEMO_PROVIDER_NPI

DEMO_FILE = Path("var/demo-users.json")


def load_demo_users(path: Path) -> list[tuple[str, str]]:
    """(username, TOTP secret) of the demo accounts, for the development sign-in page."""
    if not path.is_file():
        return []
    data = json.loads(path.read_text())
    return [(row["username"], row["totp_secret"]) for row in data]


def prepare(roles: list[str]) -> list[tuple[str, str, str]]:
    """Migrate, create one demo user per role (once), load sample charts; return logins."""
    settings = get_settings()
    if settings.production:
        raise SystemExit("chartdesk demo runs in development mode only")
    upgrade()
    from server.auth import passwords
    from server.keyring import init_keyring, keyring_path

    if not keyring_path().exists():
        init_keyring(demo=True)

    existing = json.loads(DEMO_FILE.read_text()) if DEMO_FILE.is_file() else []
    known = {row["username"]: row for row in existing}
    with session_scope() as session:
        for role in roles:
            if role in known and session.exec(select(User).where(User.username == role)).first():
                continue
            created = auth_service.create_user(
                session,
                username=role,
                roles=[role],
                npi=DEMO_PROVIDER_NPI if role == "provider" else None,
            )
            if role == "coder":
                queue_service.add_member(session, queue_name="default", username=role)
            known[role] = {
                "username": role,
                "password": created.password,
                "totp_secret": created.user.totp_secret or "",
            }
    DEMO_FILE.parent.mkdir(parents=True, exist_ok=True)
    DEMO_FILE.write_text(json.dumps(list(known.values()), indent=2))
    DEMO_FILE.chmod(0o600)
    os.environ["CHARTDESK_DEMO_FILE"] = str(DEMO_FILE)
    for hook in DEMO_HOOKS:
        hook()
    return [
        (r["username"], r["password"], passwords.totp_uri(r["totp_secret"], r["username"]))
        for r in known.values()
    ]


# Later domains register sample-data loaders here (keyring, Synthea charts, routing rules).
DEMO_HOOKS: list = []  # type: ignore[type-arg]


def _sample_encounters() -> None:
    from server.records.demo import load_sample_encounters

    load_sample_encounters()


DEMO_HOOKS.append(_sample_encounters)
