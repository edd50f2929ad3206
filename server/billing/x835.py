"""Reading X12 835 remittances (005010X221A1): validate with pyx12, then walk the segments.

`parse` is a pure function of the text: it checks the envelope and the implementation
guide itself, runs pyx12's validator, and only then reads BPR/TRN/N1/CLP/CAS/SVC/LQ/MOA/MIA
into plain values. Names and member ids (NM1 segments) are skipped, never returned. Every
refusal is an `X12Invalid` naming the segment number (1 = ISA) where the file went wrong.
"""

from __future__ import annotations

import io
import json
import logging
import re
import threading
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import cache
from pathlib import Path

IMPL_835 = "005010X221A1"
DATA = Path(__file__).with_name("data")
# Adjustments that are not a denial: patient responsibility (group PR) and the contractual
# write-downs of a paid claim (over the fee schedule, negotiated discount, sequestration).
NOT_DENIAL = {"45", "131", "253"}


class X12Invalid(ValueError):
    """A malformed 835: what is wrong and the segment number where it was found."""

    def __init__(self, message: str, *, segment: int) -> None:
        super().__init__(message)
        self.message = message
        self.segment = segment


@dataclass
class Adjustment:
    """A CAS group + CARC + amount (cents)."""

    group: str
    reason: str
    cents: int


REVERSAL = "22"  # CLP02: reversal of previous payment


@dataclass
class ServiceLine:
    """An SVC with its adjustments and remarks."""

    line_no: int
    code: str
    charge_cents: int
    paid_cents: int
    units: str | None
    adjustments: list[Adjustment] = field(default_factory=list)
    remarks: list[str] = field(default_factory=list)


@dataclass
class ClaimPayment:
    """A CLP: one claim's answer (no names or member ids)."""

    claim_number: str
    status_code: str
    charge_cents: int
    paid_cents: int
    patient_cents: int
    payer_claim_number: str | None
    adjustments: list[Adjustment] = field(default_factory=list)
    remarks: list[str] = field(default_factory=list)
    lines: list[ServiceLine] = field(default_factory=list)

    @property
    def all_adjustments(self) -> list[tuple[int | None, Adjustment]]:
        """Claim-level (line None) and line adjustments."""
        return [(None, a) for a in self.adjustments] + [
            (line.line_no, a) for line in self.lines for a in line.adjustments
        ]

    @property
    def denied_cents(self) -> int:
        """Dollars the payer denied: adjustments other than PR and contractual write-downs."""
        return sum(
            a.cents
            for _, a in self.all_adjustments
            if a.group not in ("PR", "CR") and a.reason not in NOT_DENIAL
        )

    @property
    def status(self) -> str:
        """paid | denied | partial | reversed (unmatched is decided by the caller).

        CLP02 = 22 is the payer reversing its earlier answer on the claim (negative amounts):
        it undoes that posting, it is no payment."""
        if self.status_code == REVERSAL:
            return "reversed"
        denied = self.denied_cents
        if self.status_code == "4" or (self.paid_cents <= 0 and denied > 0):
            return "denied"
        return "partial" if denied > 0 else "paid"


@dataclass
class Remit:
    """One 835 transaction, as much as we keep of it."""

    trace_number: str
    payer_name: str
    payer_id: str | None
    paid_cents: int
    claims: list[ClaimPayment]


@dataclass(frozen=True)
class CodeList:
    """A shipped code list: its name, version and short descriptions."""

    name: str
    version: str
    codes: dict[str, str]

    def describe(self, code: str) -> str | None:
        """The short description, or None for a code not in the list."""
        return self.codes.get(code)


@cache
def carc() -> CodeList:
    """The shipped Claim Adjustment Reason Codes."""
    return _load("carc.json")


@cache
def rarc() -> CodeList:
    """The shipped Remittance Advice Remark Codes."""
    return _load("rarc.json")


def _load(name: str) -> CodeList:
    data = json.loads((DATA / name).read_text(encoding="utf-8"))
    return CodeList(name=data["list"], version=data["version"], codes=data["codes"])


def _cents(value: str, *, segment: int, what: str) -> int:
    try:
        amount = Decimal(value or "0")
    except InvalidOperation:
        raise X12Invalid(f"{what} is not an amount: {value[:20]!r}", segment=segment) from None
    return int((amount * 100).to_integral_value())


def _segments(text: str) -> tuple[list[list[str]], str]:
    """Split an interchange by the separators its ISA declares; element 0 is the id."""
    body = text.lstrip()
    if not body.startswith("ISA") or len(body) < 106:
        raise X12Invalid(
            "Not an X12 interchange: it must start with a full ISA segment.", segment=1
        )
    element, component, terminator = body[3], body[104], body[105]
    if element.isalnum() or terminator.isalnum() or element == terminator:
        raise X12Invalid("The ISA segment does not declare usable separators.", segment=1)
    raw = [s.strip("\r\n\t ") for s in body.split(terminator)]
    segs = [s.split(element) for s in raw if s]
    return segs, component


def _check_envelope(segs: list[list[str]]) -> None:
    ids = [s[0] for s in segs]
    for n, seg in enumerate(segs, start=1):
        if seg[0] == "GS" and (len(seg) < 9 or seg[8] != IMPL_835):
            found = seg[8] if len(seg) > 8 else "none"
            raise X12Invalid(
                f"Implementation guide {found[:20]!r}, not an 835 {IMPL_835}.", segment=n
            )
        if seg[0] == "GS" and seg[1] != "HP":
            raise X12Invalid(f"Functional group {seg[1][:4]!r}, not HP (835).", segment=n)
        if seg[0] == "ST" and (len(seg) < 2 or seg[1] != "835"):
            raise X12Invalid(
                f"Transaction set {seg[1][:6] if len(seg) > 1 else ''!r}, not 835.", segment=n
            )
    if "GS" not in ids or "ST" not in ids:
        raise X12Invalid("No GS/ST: the interchange carries no transaction.", segment=2)
    if ids[-1] != "IEA":
        raise X12Invalid(
            f"Truncated: the interchange ends at segment {len(segs)} without its IEA trailer.",
            segment=len(segs),
        )


_LINE = re.compile(r"Line:(\d+)\s+(.*)")


class _Collect(logging.Handler):
    """pyx12's error lines logged by this thread while it validates."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.thread = threading.get_ident()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.lines.append(record.getMessage())


def _validate(text: str) -> None:
    """Run pyx12's validator; raise X12Invalid at the first segment it reports."""
    import pyx12.errors
    import pyx12.params
    import pyx12.x12n_document

    collect = _Collect()
    logger = logging.getLogger("pyx12")
    logger.addHandler(collect)
    try:
        ok = pyx12.x12n_document.x12n_document(
            param=pyx12.params.params(),
            src_file=io.StringIO(text),
            fd_997=None,  # its 999 writer fails on 835s
            fd_html=None,
            fd_json=None,
        )
    except pyx12.errors.X12Error as exc:
        raise X12Invalid(f"X12 error: {str(exc)[:200]}", segment=1) from None
    except Exception as exc:  # noqa: BLE001 - pyx12 trips on some damaged files: still a 422
        found = _first_error(collect.lines)
        segment = found[0] if found else 1
        raise X12Invalid(
            f"pyx12 could not read the file ({type(exc).__name__}).", segment=segment
        ) from None
    finally:
        logger.removeHandler(collect)
    if ok:
        return
    first = _first_error(collect.lines)
    if first:
        raise X12Invalid(f"pyx12: {first[1][:300]}", segment=first[0])
    raise X12Invalid("pyx12 refused the file.", segment=1)


def _first_error(lines: list[str]) -> tuple[int, str] | None:
    """The lowest segment number pyx12 logged an error at, and its message."""
    found = [(int(m.group(1)), m.group(2)) for m in map(_LINE.search, lines) if m]
    return min(found, key=lambda f: f[0]) if found else None


def _el(seg: list[str], n: int) -> str:
    return seg[n] if len(seg) > n else ""


def parse(text: str) -> list[Remit]:
    """Every 835 transaction of an interchange, validated first (X12Invalid if malformed)."""
    segs, component = _segments(text)
    _check_envelope(segs)
    _validate(text)
    remits: list[Remit] = []
    remit: Remit | None = None
    claim: ClaimPayment | None = None
    line: ServiceLine | None = None
    n1 = ""
    for n, seg in enumerate(segs, start=1):
        sid = seg[0]
        if sid == "ST":
            remit = Remit(trace_number="", payer_name="", payer_id=None, paid_cents=0, claims=[])
            remits.append(remit)
            claim = line = None
            continue
        if remit is None:
            continue
        if sid == "BPR":
            remit.paid_cents = _cents(_el(seg, 2), segment=n, what="BPR02")
        elif sid == "TRN":
            remit.trace_number = _el(seg, 2)
            remit.payer_id = _el(seg, 3) or None
        elif sid == "N1":
            n1 = _el(seg, 1)
            if n1 == "PR":
                remit.payer_name = _el(seg, 2)[:60]
        elif sid == "REF" and n1 == "PR" and _el(seg, 1) == "2U" and claim is None:
            remit.payer_id = _el(seg, 2)
        elif sid == "CLP":
            claim = ClaimPayment(
                claim_number=_el(seg, 1)[:38],
                status_code=_el(seg, 2)[:2],
                charge_cents=_cents(_el(seg, 3), segment=n, what="CLP03"),
                paid_cents=_cents(_el(seg, 4), segment=n, what="CLP04"),
                patient_cents=_cents(_el(seg, 5), segment=n, what="CLP05"),
                payer_claim_number=_el(seg, 7)[:50] or None,
            )
            remit.claims.append(claim)
            line = None
        elif sid == "SVC" and claim is not None:
            parts = _el(seg, 1).split(component)
            line = ServiceLine(
                line_no=len(claim.lines) + 1,
                code=":".join(parts[1:])[:48] if len(parts) > 1 else parts[0][:48],
                charge_cents=_cents(_el(seg, 2), segment=n, what="SVC02"),
                paid_cents=_cents(_el(seg, 3), segment=n, what="SVC03"),
                units=_el(seg, 5) or None,
            )
            claim.lines.append(line)
        elif sid == "CAS" and claim is not None:
            group = _el(seg, 1)
            found: list[Adjustment] = []
            for i in range(2, min(len(seg), 20), 3):  # up to six reason/amount/quantity trios
                if seg[i]:
                    what = f"CAS{i + 1:02d}"
                    found.append(
                        Adjustment(group, seg[i], _cents(_el(seg, i + 1), segment=n, what=what))
                    )
            (line.adjustments if line is not None else claim.adjustments).extend(found)
        elif sid == "LQ" and line is not None and _el(seg, 1) == "HE":
            line.remarks.append(_el(seg, 2)[:10])
        elif sid in ("MOA", "MIA") and claim is not None:
            places = (3, 4, 5, 6, 7) if sid == "MOA" else (5, 20, 21, 22, 23)
            claim.remarks += [_el(seg, i)[:10] for i in places if _el(seg, i)]
        elif sid == "SE":
            claim = line = None
    for r in remits:
        if not r.trace_number:
            raise X12Invalid("The 835 has no TRN trace number.", segment=1)
    return remits
