"""One HL7 v2 message in, one ACK out: the sender check, the records service, the metrics.

`handle` is blocking (it runs the database work) and is called off the event loop by the
MLLP listener; `refuse` answers what could not even be framed (too large, no end block).
Patient data never reaches a log line, an ACK or a metric label: errors carry their
place (segment, field) and a reason, values never.
"""

from __future__ import annotations

import logging
import re
import time

from server.auth.principal import Principal, system_principal
from server.config import get_settings
from server.db import session_scope
from server.errors import AppError, NotFound, ValidationFailed
from server.interfaces import metrics
from server.records import hl7
from server.records import service as records_service

log = logging.getLogger("chartdesk.hl7")


def _label(header: hl7.Header) -> str:
    return metrics.message_label(header.message_type, header.event)


def allowed(header: hl7.Header) -> bool:
    """Whether CHARTDESK_HL7_ALLOWED_SENDERS (empty: everyone) lets this sender deliver."""
    senders = get_settings().hl7_allowed_senders
    if not senders:
        return True
    return bool({header.sending_facility, header.sending_application} & set(senders))


def actor_of(header: hl7.Header, peer: str | None) -> Principal:
    """The sending system as the audit log's actor: `hl7:APPLICATION@FACILITY`."""
    name = re.sub(r"[^A-Za-z0-9._:@/-]", "_", f"{header.sending_application}@{header.sender}")
    actor = system_principal(f"hl7:{name}"[:100])
    actor.source_ip = peer
    return actor


def _as_rejection(exc: AppError) -> hl7.Hl7Rejected:
    """A records-service refusal as the AE it is answered with (HL7 table 0357 code)."""
    if isinstance(exc, hl7.Hl7Rejected):
        return exc
    code = (
        "204"
        if isinstance(exc, NotFound)
        else "102"
        if isinstance(exc, ValidationFailed)
        else "207"
    )
    return hl7.Hl7Rejected(f"{exc.message} Nothing was stored.", ack="AE", hl7_code=code)


def _answer(header: hl7.Header, *, started: float, error: hl7.Hl7Rejected | None = None) -> bytes:
    code = "AA" if error is None else error.ack
    reply = hl7.ack(header, code=code, error=error)
    metrics.observe(
        label=_label(header),
        code=code,
        reason=error.reason if error is not None else None,
        seconds=time.perf_counter() - started,
    )
    if error is not None:
        # Ids and codes only: the control id is the sender's message id, never patient data.
        log.info(
            "hl7 %s %s from %s: %s %s at %s",
            _label(header),
            header.control_id[:64],
            header.sender[:64],
            code,
            error.reason,
            error.where,
        )
    return reply.encode()


def handle(raw: bytes, *, peer: str | None = None, started: float | None = None) -> bytes:
    """Apply one message (a transaction of its own) and return its ACK, AA, AE or AR."""
    started = time.perf_counter() if started is None else started
    header = hl7.header_of(raw)
    try:
        if header.control_id and not allowed(header):
            raise hl7.Hl7Rejected(
                "This sending facility/application is not allowed to deliver here.",
                ack="AR",
                hl7_code="207",
                where="MSH^1^4",
                label="sender-not-allowed",
            )
        message = hl7.parse(raw)
        header = message.header
        with session_scope() as session:
            records_service.ingest_hl7(session, actor=actor_of(header, peer), message=message)
    except AppError as exc:
        return _answer(header, started=started, error=_as_rejection(exc))
    except Exception as exc:  # noqa: BLE001 - answered AE; the type only is logged
        log.error("hl7 message failed: %s", type(exc).__name__)
        error = hl7.Hl7Rejected(
            "The message could not be applied (internal error); nothing was stored.",
            hl7_code="207",
        )
        return _answer(header, started=started, error=error)
    return _answer(header, started=started)


def refuse(
    partial: bytes, *, message: str, reason: str, ack: str = "AR", started: float | None = None
) -> bytes:
    """The ACK for bytes that never made a whole message (too large, no end block)."""
    started = time.perf_counter() if started is None else started
    error = hl7.Hl7Rejected(message, ack=ack, hl7_code="207", label=reason)
    return _answer(hl7.header_of(partial[:4096]), started=started, error=error)
