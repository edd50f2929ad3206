"""Alembic from code: upgrade, and the check that refuses to serve a database behind."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from server.config import PROJECT_ROOT, get_settings
from server.errors import ServiceUnavailable


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config pointing at our migrations and the given (or configured) database."""
    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    cfg.set_main_option("sqlalchemy.url", (url or get_settings().database_url).replace("%", "%%"))
    return cfg


def upgrade(url: str | None = None) -> None:
    """`alembic upgrade head` on the database."""
    command.upgrade(alembic_config(url), "head")


def check_current(engine: Engine) -> None:
    """Raise with a plain message if the database is not at the newest migration."""
    heads = set(ScriptDirectory.from_config(alembic_config()).get_heads())
    with engine.connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
    if current != heads:
        at = ", ".join(sorted(current)) or "no migrations"
        raise ServiceUnavailable(
            f"The database is behind this version of Chartdesk (at {at}, "
            f"needs {', '.join(sorted(heads))}). Run `chartdesk migrate` first."
        )
