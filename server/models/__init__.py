"""Every table, imported here so metadata (and Alembic) sees them all."""

from server.models.audit import AuditEvent
from server.models.base import UTCDateTime, utcnow
from server.models.billing import ChargeItem, ControlCounter
from server.models.coding import (
    ClaimRecord,
    ClaimReturn,
    CodeSetEntry,
    HcpcsPeriod,
    ItemAbstract,
    ItemCodes,
    QaReview,
)
from server.models.edits import EditFileLoad, EditLevel, MueEdit, NcciPtpEdit
from server.models.qa import QaFinding
from server.models.query import EncounterProvider, PhysicianQuery, ProviderAccount
from server.models.queue import Queue, QueueMember, RoutingRule
from server.models.record import DataKey, Document, Encounter, Hl7Message, Patient
from server.models.remit import RemitAdjustment, RemitClaim, RemitLine, RemitRemark, Remittance
from server.models.report import AuditDay, CodingDay, ProductivityStandard
from server.models.review import FlagCase, FlagCaseStep
from server.models.sampling import QaSampleRule, QaSampling
from server.models.security import OidcTransaction, RateLimitCounter
from server.models.user import Role, Scope, ServiceToken, User, UserRole, UserSession
from server.models.work import Status, WorkItem, WorkItemEvent

__all__ = [
    "AuditDay",
    "AuditEvent",
    "CodingDay",
    "ChargeItem",
    "ClaimRecord",
    "ClaimReturn",
    "ControlCounter",
    "CodeSetEntry",
    "HcpcsPeriod",
    "DataKey",
    "Document",
    "EditFileLoad",
    "EditLevel",
    "Encounter",
    "EncounterProvider",
    "Hl7Message",
    "FlagCase",
    "FlagCaseStep",
    "ItemAbstract",
    "ItemCodes",
    "MueEdit",
    "NcciPtpEdit",
    "OidcTransaction",
    "QaFinding",
    "QaReview",
    "QaSampleRule",
    "QaSampling",
    "Patient",
    "PhysicianQuery",
    "ProductivityStandard",
    "ProviderAccount",
    "Queue",
    "QueueMember",
    "RateLimitCounter",
    "RemitAdjustment",
    "RemitClaim",
    "RemitLine",
    "RemitRemark",
    "Remittance",
    "Role",
    "RoutingRule",
    "Scope",
    "ServiceToken",
    "Status",
    "UTCDateTime",
    "User",
    "UserRole",
    "UserSession",
    "WorkItem",
    "WorkItemEvent",
    "utcnow",
]
