"""Build X12 835 remittances (005010X221A1) in tests: a payer's answer to our claims."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RemitLine:
    """One service line paid (SVC) with its adjustments and remarks."""

    code: str  # CPT/HCPCS, e.g. 99213
    charge: float
    paid: float
    adjustments: list[tuple[str, str, float]] = field(default_factory=list)  # group, CARC, amt
    remarks: list[str] = field(default_factory=list)  # RARC codes (LQ*HE)
    units: int = 1


@dataclass
class RemitClaim:
    """One claim paid or denied (CLP)."""

    claim_id: str  # CLP01: our CLM01 (CD<work item id>)
    status: str  # CLP02: 1 processed as primary, 4 denied, 22 reversal
    charge: float
    paid: float
    payer_claim_number: str  # CLP07
    lines: list[RemitLine] = field(default_factory=list)
    adjustments: list[tuple[str, str, float]] = field(default_factory=list)
    patient_last: str = "DOE"
    patient_first: str = "JANE"
    member_id: str = "MEM123456"


def _money(value: float) -> str:
    text = f"{value:.2f}"
    return text.rstrip("0").rstrip(".")


def build_835(claims: list[RemitClaim], *, trace: str = "TRACE0001", control: int = 1) -> str:
    """An 835 interchange paying (or denying) `claims`, one segment per line."""
    total = sum(c.paid for c in claims)
    body: list[str] = [
        "ST*835*0001",
        "BPR*I*" + _money(total) + "*C*CHK" + "*" * 12 + "20261127",
        f"TRN*1*{trace}*1512345678",
        "DTM*405*20261127",
        "N1*PR*ACME HEALTH PLAN",
        "N3*1 PAYER WAY",
        "N4*BOSTON*MA*02101",
        "PER*BL*EDI SUPPORT*TE*8005551212",
        "N1*PE*CHARTDESK CLINIC*XX*1234567893",
    ]
    body.append("LX*1")
    for c in claims:
        body.append(
            f"CLP*{c.claim_id}*{c.status}*{_money(c.charge)}*{_money(c.paid)}**12*"
            f"{c.payer_claim_number}*11*1"
        )
        for group, reason, amount in c.adjustments:
            body.append(f"CAS*{group}*{reason}*{_money(amount)}")
        body.append(f"NM1*QC*1*{c.patient_last}*{c.patient_first}****MI*{c.member_id}")
        body.append("DTM*232*20261101")
        for line in c.lines:
            body.append(
                f"SVC*HC:{line.code}*{_money(line.charge)}*{_money(line.paid)}**{line.units}"
            )
            body.append("DTM*472*20261101")
            for group, reason, amount in line.adjustments:
                body.append(f"CAS*{group}*{reason}*{_money(amount)}")
            for remark in line.remarks:
                body.append(f"LQ*HE*{remark}")
    body.append(f"SE*{len(body) + 1}*0001")
    ctrl = f"{control:09d}"
    isa = (
        "ISA*00*          *00*          *ZZ*ACMEPAYER      *ZZ*CHARTDESK      *261127*1200*^*"
        f"00501*{ctrl}*0*T*:"
    )
    segments = [
        isa,
        f"GS*HP*ACMEPAYER*CHARTDESK*20261127*1200*{control}*X*005010X221A1",
        *body,
        f"GE*1*{control}",
        f"IEA*1*{ctrl}",
    ]
    return "".join(s + "~\n" for s in segments)
