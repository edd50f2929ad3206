"""The caller of a request, as every service and the audit log see it."""

from __future__ import annotations

from dataclasses import dataclass, field

from server.models import ServiceToken, User, UserSession


@dataclass
class Principal:
    """A signed-in person or a service token, plus where the request came from."""

    name: str
    kind: str  # user, token, anonymous, system
    roles: frozenset[str] = frozenset()
    scopes: frozenset[str] = frozenset()
    user: User | None = None
    token: ServiceToken | None = None
    session: UserSession | None = None
    source_ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None
    # Plain copies, still readable after the request's transaction rolled back (error pages).
    user_id: int | None = None
    csrf_token: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.user is not None and self.user_id is None:
            self.user_id = self.user.id
        if self.session is not None and self.csrf_token is None:
            self.csrf_token = self.session.csrf_token

    def has_role(self, *roles: str) -> bool:
        """Whether the caller is a person holding any of `roles`."""
        return self.kind == "user" and bool(self.roles.intersection(roles))


def system_principal(name: str = "system") -> Principal:
    """The actor for work the server or an operator's shell does by itself."""
    return Principal(name=name, kind="system")
