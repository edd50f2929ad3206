"""`chartdesk demo`: prepare the embedded default with demo users and sample charts."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from sqlmodel import select

from server.auth import passwords
from server.auth import service as auth_service
from server.billing import cdm
from server.config import get_settings
from server.db import session_scope
from server.keyring import init_keyring, keyring_path
from server.migrate import upgrade
from server.models import User
from server.queue import service as queue_service
from server.records.demo import DEMO_PROVIDER_NPI, Loaded, load_sample_encounters

DEMO_FILE = Path("var/demo-users.json")


@dataclass
class Prepared:
    """What `chartdesk demo` prints: each login (name, password, otpauth URI) and the charts."""

    logins: list[tuple[str, str, str]]
    charts: Loaded
    chargemaster: int = 0  # lines of the demo chargemaster loaded now (0: already there)


def load_demo_users(path: Path) -> list[tuple[str, str]]:
    """(username, TOTP secret) of the demo accounts, for the development sign-in page."""
    if not path.is_file():
        return []
    data = json.loads(path.read_text())
    return [(row["username"], row["totp_secret"]) for row in data]


def prepare(roles: list[str]) -> Prepared:
    """Migrate, create one demo user per role (once), load the sample charts.

    The accounts' secrets go to CHARTDESK_DEMO_FILE (mode 0600), which the development
    sign-in page reads to show each account's current authenticator code.
    """
    settings = get_settings()
    if settings.production:
        raise SystemExit("chartdesk demo runs in development mode only")
    demo_file = settings.demo_file or DEMO_FILE
    upgrade()
    if not keyring_path().exists():
        init_keyring(demo=True)
    existing = json.loads(demo_file.read_text()) if demo_file.is_file() else []
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
    with session_scope() as session:  # real-looking prices on the demo's claims
        priced = cdm.load(session, path=cdm.DEMO_FILE)
    demo_file.parent.mkdir(parents=True, exist_ok=True)
    demo_file.write_text(json.dumps(list(known.values()), indent=2))
    demo_file.chmod(0o600)
    logins = [
        (r["username"], r["password"], passwords.totp_uri(r["totp_secret"], r["username"]))
        for r in known.values()
    ]
    return Prepared(
        logins=logins,
        charts=load_sample_encounters(),
        chargemaster=0 if priced.already_loaded else priced.rows,
    )
