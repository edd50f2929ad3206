"""HL7 v2 messages (ADT, MDM, ORU) to what the records service applies; ACKs back.

The structure (segments, fields, repetitions, components) is parsed by python-hl7; values
are read raw and unescaped here, strictly: an escape sequence HL7 v2.5.1 does not define
(or one left open) refuses the message, where the library would drop it silently and log
the field's value. Segments are looked up by name, so a feed that sends them out of order
or repeats them (two IN1, OBX before TXA) is read the same way.

Nothing here stores anything. `parse` returns an `Hl7Parsed` or raises `Hl7Rejected`,
which carries the ACK code (AE: the content is wrong; AR: we do not take this message),
the HL7 error code (table 0357), where (segment, field) and why, never a value.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import hl7
from pydantic import ValidationError

from server.config import get_settings
from server.errors import AppError
from server.records.fhir import payer_class
from server.records.schemas import DocumentIn, EncounterIn

# python-hl7 logs a field's whole value when it meets an escape it does not know; we never
# let it unescape, and keep its logger quiet in case a future version logs elsewhere.
logging.getLogger("hl7").setLevel(logging.CRITICAL)

VERSION = "2.5.1"
ADMIT = {"A01", "A04"}  # create the encounter
UPDATE = {"A08"}  # replace its data
DISCHARGE = {"A03"}  # set the end of the visit
CANCEL = {"A11"}  # cancel the visit (admit/visit notification)
UNDO_DISCHARGE = {"A13"}  # cancel the discharge
EVENTS: dict[str, set[str]] = {
    "ADT": ADMIT | UPDATE | DISCHARGE | CANCEL | UNDO_DISCHARGE,
    "MDM": {"T02", "T04", "T08"},
    "ORU": {"R01"},
}
# PV1-2 patient class (HL7 table 0004) to our encounter class.
PATIENT_CLASS = {
    "I": "inpatient",
    "B": "inpatient",  # obstetrics
    "E": "emergency",
    "O": "outpatient",
    "R": "outpatient",  # recurring patient
    "P": "outpatient",  # preadmit
}
SEX = {"F": "female", "M": "male", "O": "other", "U": "unknown", "A": "other", "N": "unknown"}
TEXT_TYPES = {"TX", "FT", "ST"}
# Escape sequences of HL7 v2.5.1 section 2.7 (separators, highlighting, formatting, hex).
_FORMAT = r"\.br|\.sp\d*|\.fi|\.nf|\.in[+-]?\d*|\.ti[+-]?\d*|\.sk[+-]?\d*|\.ce"
_SEQUENCE = rf"(?:[FSTREHN]|X(?:[0-9A-Fa-f]{{2}})+|{_FORMAT})"


class Hl7Rejected(AppError):
    """A message we answer AE or AR: the HL7 error code, where and why (never a value)."""

    status_code = 422
    code = "hl7_rejected"

    def __init__(
        self,
        message: str,
        *,
        ack: str = "AE",
        hl7_code: str = "207",
        where: str = "",
        label: str | None = None,
    ) -> None:
        super().__init__(message, code="hl7_rejected")
        self.ack = ack
        self.hl7_code = hl7_code
        self.where = where  # "PID^1^3": segment, occurrence, field
        self.label = label

    @property
    def reason(self) -> str:
        """A short fixed label for metrics: `label`, else the HL7 error code's name."""
        return self.label or ERROR_NAMES.get(self.hl7_code, "error")


# HL7 table 0357, message error condition codes.
ERROR_NAMES = {
    "100": "segment-sequence-error",
    "101": "required-field-missing",
    "102": "data-type-error",
    "103": "table-value-not-found",
    "200": "unsupported-message-type",
    "201": "unsupported-event-code",
    "202": "unsupported-processing-id",
    "203": "unsupported-version-id",
    "204": "unknown-key-identifier",
    "205": "duplicate-key-identifier",
    "206": "application-record-locked",
    "207": "application-internal-error",
}


def _missing(where: str, what: str) -> Hl7Rejected:
    return Hl7Rejected(f"{where} ({what}) is required.", hl7_code="101", where=where)


def _bad(where: str, what: str) -> Hl7Rejected:
    return Hl7Rejected(f"{where} is not {what}.", hl7_code="102", where=where)


@dataclass(frozen=True)
class Header:
    """MSH: who sent the message, what it is and its control id (MSH-10)."""

    sending_application: str = ""
    sending_facility: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""
    message_type: str = ""
    event: str = ""
    control_id: str = ""
    processing_id: str = "P"
    version: str = VERSION

    @property
    def sender(self) -> str:
        """The key of idempotency: the sending facility (else the application)."""
        return self.sending_facility or self.sending_application

    @property
    def kind(self) -> str:
        """`ADT^A01` and the like."""
        return f"{self.message_type}^{self.event}"


@dataclass
class Hl7Parsed:
    """One message, read: what to apply to which visit.

    `encounter` is the whole encounter for ADT A01/A04/A08/A03 (patient, visit, insurance);
    `documents` the notes of MDM/ORU; `visit` the sealed visit data (attending, discharge
    disposition) that the coding view does not show.
    """

    header: Header
    source_system: str
    external_id: str
    encounter: EncounterIn | None = None
    visit: dict[str, Any] = field(default_factory=dict)
    documents: list[DocumentIn] = field(default_factory=list)

    @property
    def event(self) -> str:
        """The trigger event (A01, T02, R01...)."""
        return self.header.event


# ---------------------------------------------------------------- reading values


class _Reader:
    """Raw access to one parsed message, with strict HL7 unescaping of every value read."""

    def __init__(self, message: hl7.Message) -> None:
        self.message = message
        self.separators = message.separators  # "\r|~^&"
        self.esc = message.esc

    def segments(self, name: str) -> list[hl7.Segment]:
        """Every segment with this name, in the order sent."""
        return [s for s in self.message if str(s[0]) == name]

    def first(self, name: str) -> hl7.Segment | None:
        """The first segment with this name, if any."""
        found = self.segments(name)
        return found[0] if found else None

    def raw(self, seg: hl7.Segment | None, f: int, r: int = 1, c: int = 1, s: int = 1) -> str:
        """Field f, repetition r, component c, subcomponent s, as sent (still escaped)."""
        if seg is None:
            return ""
        try:
            if f >= len(seg):
                return ""
            node: Any = seg(f)
            for index in (r, c, s):
                if isinstance(node, str):
                    return node if index == 1 else ""
                if index > len(node):
                    return ""
                node = node(index)
            while not isinstance(node, str):  # deeper than asked: its first leaf
                node = node(1) if len(node) else ""
            return node
        except IndexError:
            return ""

    def get(self, seg: hl7.Segment | None, f: int, r: int = 1, c: int = 1, s: int = 1) -> str:
        """The unescaped, stripped value at that place ("" if absent)."""
        return self.unescape(self.raw(seg, f, r, c, s)).strip()

    def repetitions(self, seg: hl7.Segment | None, f: int) -> int:
        """How many repetitions field f has (0 if absent)."""
        if seg is None or f >= len(seg):
            return 0
        node = seg(f)
        return 1 if isinstance(node, str) else len(node)

    def unescape(self, value: str) -> str:
        """Decode the escape sequences of one value (checked by `check_escapes` first)."""
        if self.esc not in value:
            return value
        field_sep, rep_sep, comp_sep, sub_sep = self.separators[1:5]
        plain = {"F": field_sep, "S": comp_sep, "T": sub_sep, "R": rep_sep, "E": self.esc}
        out: list[str] = []
        parts = value.split(self.esc)
        for n, part in enumerate(parts):
            if n % 2 == 0:
                out.append(part)
            elif part in plain:
                out.append(plain[part])
            elif part.startswith("X"):
                out.append(bytes.fromhex(part[1:]).decode("latin-1"))
            elif part in (".br", ".ce") or part.startswith(".sp"):
                count = int(part[3:]) if part[3:].isdigit() else 1
                out.append("\n" * count)
            elif part.startswith((".in", ".ti", ".sk")):
                out.append(" ")
            # \H\ \N\ (highlighting) and \.fi\ \.nf\ (fill mode) carry no text.
        return "".join(out)


def check_escapes(text: str, esc: str, field_sep: str) -> None:
    """Refuse (AE 102) a message with an escape sequence HL7 does not define or left open."""
    if not esc:
        return
    good = re.compile(re.escape(esc) + _SEQUENCE + re.escape(esc))
    seen: dict[str, int] = {}
    for number, line in enumerate(text.split("\r"), start=1):
        name = line[:3]
        seen[name] = seen.get(name, 0) + 1
        is_msh = name == "MSH"
        # MSH-1 and MSH-2 hold the delimiters themselves: MSH is checked from MSH-3 on.
        body = (line.split(field_sep, 2)[2:] or [""])[0] if is_msh else line
        if esc in good.sub("", body):
            fields = body.split(field_sep)
            position = next(i for i, f in enumerate(fields) if esc in good.sub("", f))
            position += 3 if is_msh else 0  # the MSH body starts at MSH-3
            raise Hl7Rejected(
                f"Segment {number} ({name}) has an escape sequence HL7 does not define "
                "or one left open; nothing was stored.",
                hl7_code="102",
                where=f"{name}^{seen[name]}^{position}",
            )


def _zone() -> Any:
    try:
        return ZoneInfo(get_settings().hl7_timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


_DTM = re.compile(
    r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.\d{1,4})?(?:([+-])(\d{2})(\d{2}))?$"
)


def parse_time(value: str, where: str) -> datetime | None:
    """An HL7 DTM (YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ]); no offset: CHARTDESK_HL7_TIMEZONE."""
    if not value:
        return None
    m = _DTM.match(value)
    if m is None:
        raise _bad(where, "an HL7 date/time (YYYYMMDDHHMMSS+ZZZZ)")
    year, month, day, hour, minute, second, sign, oh, om = m.groups()
    try:
        naive = datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
        )
        if sign:
            offset = timedelta(hours=int(oh), minutes=int(om))
            return naive.replace(tzinfo=timezone(offset if sign == "+" else -offset))
        return naive.replace(tzinfo=_zone())
    except ValueError:
        raise _bad(where, "a valid date/time") from None


def _birth_date(value: str) -> date | None:
    if not value:
        return None
    if not re.match(r"^\d{8}", value):
        raise _bad("PID^1^7", "an HL7 date (YYYYMMDD)")
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:8]))
    except ValueError:
        raise _bad("PID^1^7", "a valid date") from None


# ---------------------------------------------------------------- segments


def _header(r: _Reader) -> Header:
    msh = r.first("MSH")
    if msh is None:
        raise Hl7Rejected("The message does not start with MSH.", ack="AR", hl7_code="100")
    return Header(
        sending_application=r.get(msh, 3) or r.get(msh, 3, c=2),
        sending_facility=r.get(msh, 4) or r.get(msh, 4, c=2),
        receiving_application=r.get(msh, 5),
        receiving_facility=r.get(msh, 6),
        message_type=r.get(msh, 9, c=1),
        event=r.get(msh, 9, c=2),
        control_id=r.get(msh, 10),
        processing_id=r.get(msh, 11) or "P",
        version=r.get(msh, 12) or VERSION,
    )


def _check_header(h: Header) -> None:
    if not h.control_id:
        raise Hl7Rejected(
            "MSH-10 (message control id) is required.", ack="AR", hl7_code="101", where="MSH^1^10"
        )
    if len(h.control_id) > 200 or len(h.sender) > 200:
        raise Hl7Rejected(
            "MSH-10 or MSH-4 is too long.", ack="AR", hl7_code="102", where="MSH^1^10"
        )
    if not h.sender:
        raise _missing("MSH^1^4", "sending facility")
    if h.message_type not in EVENTS:
        raise Hl7Rejected(
            "This message type is not taken here (ADT, MDM, ORU).",
            ack="AR",
            hl7_code="200",
            where="MSH^1^9",
        )
    if h.event not in EVENTS[h.message_type]:
        raise Hl7Rejected(
            f"This {h.message_type} trigger event is not taken here "
            f"({', '.join(sorted(EVENTS[h.message_type]))}).",
            ack="AR",
            hl7_code="201",
            where="MSH^1^9",
        )
    if not h.version.startswith("2."):
        raise Hl7Rejected(
            "Only HL7 version 2.x is taken here.", ack="AR", hl7_code="203", where="MSH^1^12"
        )
    if h.processing_id[:1] not in ("P", "T", "D"):
        raise Hl7Rejected("MSH-11 must be P, T or D.", ack="AR", hl7_code="202", where="MSH^1^11")


def _visit_number(r: _Reader, h: Header) -> tuple[str, str]:
    """(source system, visit number) from PV1-19: its assigning authority, else the sender."""
    pv1 = r.first("PV1")
    if pv1 is None:
        raise Hl7Rejected(
            "The message has no PV1 segment (the visit).", hl7_code="100", where="PV1"
        )
    number = r.get(pv1, 19, c=1)
    if not number:
        raise _missing("PV1^1^19", "visit number")
    authority = r.get(pv1, 19, c=4, s=2) or r.get(pv1, 19, c=4, s=1)
    return authority or f"urn:chartdesk:hl7:{h.sender}", number


def _mrn(r: _Reader, pid: hl7.Segment) -> str:
    count = r.repetitions(pid, 3)
    ids = [(r.get(pid, 3, n, 1), r.get(pid, 3, n, 5)) for n in range(1, count + 1)]
    mrn = next((v for v, kind in ids if v and kind == "MR"), None) or next(
        (v for v, _ in ids if v), None
    )
    if not mrn:
        raise _missing("PID^1^3", "patient identifier list (MRN)")
    return mrn


def _person_name(r: _Reader, seg: hl7.Segment, f: int, first: int = 1) -> str | None:
    """XPN (or XCN from `first`=2) as "given middle family", as the FHIR path writes names."""
    family, given, middle = (r.get(seg, f, c=first + n) for n in range(3))
    return " ".join(p for p in (given, middle, family) if p) or None


def _patient(r: _Reader) -> dict[str, Any]:
    pid = r.first("PID")
    if pid is None:
        raise Hl7Rejected(
            "The message has no PID segment (the patient).", hl7_code="100", where="PID"
        )
    mrn = _mrn(r, pid)
    name = _person_name(r, pid, 5)
    if not name:
        raise _missing("PID^1^5", "patient name")
    others = [
        {
            "type": r.get(pid, 3, n, 5) or None,
            "system": r.get(pid, 3, n, 4) or None,
            "value": r.get(pid, 3, n, 1),
        }
        for n in range(1, r.repetitions(pid, 3) + 1)
        if r.get(pid, 3, n, 1) and r.get(pid, 3, n, 1) != mrn and r.get(pid, 3, n, 5) != "SS"
    ]
    street = [r.get(pid, 11, c=1), r.get(pid, 11, c=2)]
    address = {
        "line": [x for x in street if x],
        "city": r.get(pid, 11, c=3) or None,
        "state": r.get(pid, 11, c=4) or None,
        "postal_code": r.get(pid, 11, c=5) or None,
        "country": r.get(pid, 11, c=6) or None,
    }
    sex = r.get(pid, 8)
    return {
        "mrn": mrn,
        "name": name,
        "birth_date": _birth_date(r.get(pid, 7)),
        "sex": SEX.get(sex.upper(), sex.lower()) if sex else None,
        "ssn": r.get(pid, 19)
        or next(
            (
                r.get(pid, 3, n, 1)
                for n in range(1, r.repetitions(pid, 3) + 1)
                if r.get(pid, 3, n, 5) == "SS"
            ),
            None,
        ),
        "phone": r.get(pid, 13, c=1) or r.get(pid, 13, c=12) or None,
        "address": address if any(address.values()) else None,
        "identifiers": others,
    }


def _payer(r: _Reader) -> dict[str, Any] | None:
    """The primary insurance (IN1 with the lowest set id; IN1-4 company, IN1-36 policy,
    IN1-3 the insurance company's id, taken as the payer id)."""
    plans = r.segments("IN1")
    if not plans:
        return None

    def _order(seg: hl7.Segment) -> int:
        value = r.get(seg, 1)
        return int(value) if value.isdigit() else 999

    in1 = min(plans, key=_order)
    name = r.get(in1, 4, c=1) or r.get(in1, 2, c=2) or r.get(in1, 2, c=1)
    member = r.get(in1, 36) or r.get(in1, 49, c=1)
    if not name and not member:
        return None
    payer_id = r.get(in1, 3, c=1)
    return {"name": name or None, "member_id": member or None, "payer_id": payer_id or None}


def _encounter(
    r: _Reader, h: Header, source: str, number: str
) -> tuple[EncounterIn, dict[str, Any]]:
    pv1 = r.first("PV1")
    patient_class = r.get(pv1, 2)
    if not patient_class:
        raise _missing("PV1^1^2", "patient class")
    if patient_class.upper() not in PATIENT_CLASS:
        raise Hl7Rejected(
            f"PV1-2 patient class must be one of {', '.join(sorted(PATIENT_CLASS))}.",
            hl7_code="103",
            where="PV1^1^2",
        )
    start = parse_time(r.get(pv1, 44), "PV1^1^44")
    end = parse_time(r.get(pv1, 45), "PV1^1^45")
    if h.event in DISCHARGE and end is None:
        raise _missing("PV1^1^45", "discharge date/time")
    payer = _payer(r)
    raw = {
        "source_system": source,
        "external_id": number,
        "class": PATIENT_CLASS[patient_class.upper()],
        "facility": r.get(pv1, 3, c=4) or r.get(pv1, 39) or None,
        "service_type": r.get(pv1, 10) or None,
        "payer_class": payer_class(payer.get("name") if payer else None),
        "start": start,
        "end": end,
        "patient": _patient(r),
        "payer": payer,
    }
    try:
        data = EncounterIn.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first.get("loc", ()))
        raise Hl7Rejected(
            f"The visit is not acceptable ({loc}: {first.get('msg', '')}).", hl7_code="102"
        ) from None
    attending = {
        "id": r.get(pv1, 7, c=1) or None,
        "name": _person_name(r, pv1, 7, first=2) if pv1 is not None else None,
    }
    visit = {
        "attending": attending if any(attending.values()) else None,
        "discharge_disposition": r.get(pv1, 36) or None,
    }
    return data, visit


def _document_text(r: _Reader, obx: hl7.Segment, where: str) -> str | None:
    """The note an OBX carries: TX/FT/ST lines, or ED base64/ASCII text; None for others."""
    value_type = r.get(obx, 2).upper()
    if value_type in TEXT_TYPES:
        count = r.repetitions(obx, 5)
        return "\n".join(r.unescape(r.raw(obx, 5, n)) for n in range(1, count + 1))
    if value_type != "ED":
        return None
    encoding, data = r.get(obx, 5, c=4).upper(), r.get(obx, 5, c=5)
    if encoding == "A":
        return data
    if encoding != "BASE64":
        raise _bad(where, "ED data in Base64 or A (ASCII) encoding")
    try:
        return base64.b64decode(data, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise _bad(where, "Base64-encoded UTF-8 text") from None


def _documents(r: _Reader, h: Header) -> list[DocumentIn]:
    """The notes of an MDM (TXA + OBX) or ORU (OBR + OBX), one per ED or per text run."""
    txa = r.first("TXA")
    context: dict[str, Any] = {}
    if txa is not None:
        context = {
            "type": r.get(txa, 2) or None,
            "date": parse_time(r.get(txa, 4) or r.get(txa, 6), "TXA^1^4"),
        }
    notes: list[dict[str, Any]] = []
    text_note: dict[str, Any] | None = None
    obx_number = 0
    for seg in r.message:
        name = str(seg[0])
        if name == "OBR" and h.message_type == "ORU":
            context = {
                "title": r.get(seg, 4, c=2) or None,
                "type": r.get(seg, 4, c=1) or None,
                "date": parse_time(r.get(seg, 7), "OBR^1^7"),
            }
            text_note = None
        if name != "OBX":
            continue
        obx_number += 1
        where = f"OBX^{obx_number}^5"
        text = _document_text(r, seg, where)
        if text is None:
            continue
        note = {
            "title": r.get(seg, 3, c=2) or context.get("title"),
            "type": r.get(seg, 3, c=1) or context.get("type"),
            "date": parse_time(r.get(seg, 14), f"OBX^{obx_number}^14") or context.get("date"),
        }
        if r.get(seg, 2).upper() == "ED":
            notes.append({**note, "text": text})
            text_note = None
        elif text_note is not None and text_note["type"] == note["type"]:
            text_note["text"] += "\n" + text
        else:
            text_note = {**note, "text": text}
            notes.append(text_note)
    notes = [n for n in notes if n["text"].strip()]
    if not notes:
        raise _missing("OBX^1^5", "note text: OBX of type TX, FT or ED")
    try:
        return [DocumentIn.model_validate(n) for n in notes]
    except ValidationError as exc:
        first = exc.errors()[0]
        raise Hl7Rejected(
            f"A note is not acceptable ({first.get('msg', '')}).", hl7_code="102"
        ) from None


# ---------------------------------------------------------------- the message


def normalise(raw: bytes | str) -> str:
    """The message as text with segments ended by CR (feeds also send LF or CRLF)."""
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    text = text.replace("\r\n", "\r").replace("\n", "\r")
    return "\r".join(line for line in text.split("\r") if line.strip())


def parse(raw: bytes | str) -> Hl7Parsed:
    """One HL7 v2 message read for ingest, or Hl7Rejected (AE/AR, where and why)."""
    try:
        text = normalise(raw)
    except UnicodeDecodeError:
        raise Hl7Rejected("The message is not UTF-8 text.", ack="AR", hl7_code="102") from None
    if not text.startswith("MSH") or len(text) < 9:
        raise Hl7Rejected("The message does not start with MSH.", ack="AR", hl7_code="100")
    field_sep = text[3]
    encoding = text[4:].split(field_sep, 1)[0]  # MSH-2: component, repetition, escape, sub
    check_escapes(text, encoding[2] if len(encoding) > 2 else "", field_sep)
    try:
        message = hl7.parse(text)
    except Exception:  # noqa: BLE001 - the library raises several kinds; none carry values here
        raise Hl7Rejected(
            "The message cannot be parsed as HL7 v2.", ack="AR", hl7_code="102"
        ) from None
    r = _Reader(message)
    header = _header(r)
    _check_header(header)
    source, number = _visit_number(r, header)
    parsed = Hl7Parsed(header=header, source_system=source, external_id=number)
    if header.message_type == "ADT" and header.event not in CANCEL:
        parsed.encounter, parsed.visit = _encounter(r, header, source, number)
    elif header.message_type in ("MDM", "ORU"):
        parsed.documents = _documents(r, header)
    return parsed


def header_of(raw: bytes | str) -> Header:
    """The MSH of a message we could not read whole, as far as it goes (for the ACK)."""
    try:
        text = normalise(raw)
        if text.startswith("MSH"):
            return _header(_Reader(hl7.parse(text.split("\r", 1)[0])))
    except Exception:  # noqa: BLE001, S110 - best effort: an ACK without MSA-2 is still sent
        pass
    return Header()


# ---------------------------------------------------------------- acknowledgements


def _escape(value: str) -> str:
    """A value made safe to place in a field of our ACK (standard delimiters)."""
    out = value.replace("\\", "\\E\\").replace("|", "\\F\\").replace("^", "\\S\\")
    out = out.replace("&", "\\T\\").replace("~", "\\R\\")
    return re.sub(r"[\x00-\x1f]", " ", out)[:200]


def ack(header: Header, *, code: str = "AA", error: Hl7Rejected | None = None) -> str:
    """The original-mode ACK (HL7 v2.5.1 2.9.2): MSH, MSA, and ERR for AE/AR."""
    now = datetime.now(UTC).strftime("%Y%m%d%H%M%S+0000")
    msh = "|".join(
        [
            "MSH",
            "^~\\&",
            _escape(header.receiving_application or "CHARTDESK"),
            _escape(header.receiving_facility),
            _escape(header.sending_application),
            _escape(header.sending_facility),
            now,
            "",
            f"ACK^{_escape(header.event)}^ACK" if header.event else "ACK",
            uuid.uuid4().hex[:20],
            _escape(header.processing_id or "P"),
            VERSION,
        ]
    )
    msa = ["MSA", code, _escape(header.control_id)]
    segments = [msh]
    if error is not None:
        msa.append(_escape(error.message))
        name = ERROR_NAMES.get(error.hl7_code, "error").replace("-", " ")
        segments.append("|".join(msa))
        segments.append(
            "|".join(
                [
                    "ERR",
                    "",
                    error.where,
                    f"{error.hl7_code}^{name}^HL70357",
                    "E",
                    "",
                    "",
                    "",
                    _escape(error.message),
                ]
            )
        )
    else:
        segments.append("|".join(msa))
    return "\r".join(segments) + "\r"
