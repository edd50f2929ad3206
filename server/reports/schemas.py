"""Response models of the reports API (API.md "Reports"): ids, counts, classes and times only."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from server.reports.casemix import MixFigures, MixReport, Shift, ShiftReport
from server.reports.service import (
    Bucket,
    ClassFigures,
    CoderFigures,
    DnfbReport,
    ProductivityReport,
)


class BucketView(BaseModel):
    """One age bucket: items discharged and not billed, and their charges (None: not known)."""

    label: str
    count: int
    charges: float | None

    @classmethod
    def of(cls, bucket: Bucket) -> BucketView:
        """Build the view of one bucket."""
        return cls(label=bucket.label, count=bucket.count, charges=bucket.charges)


class DnfbGroupView(BaseModel):
    """The buckets of one queue, encounter class or payer class."""

    key: str
    buckets: list[BucketView]


class DnfbView(BaseModel):
    """`GET /api/v1/reports/dnfb`: totals per bucket, and per group."""

    as_of: datetime
    by: str
    buckets: list[BucketView]
    groups: list[DnfbGroupView]
    charges_available: bool

    @classmethod
    def of(cls, report: DnfbReport) -> DnfbView:
        """Build the answer from a report."""
        return cls(
            as_of=report.as_of,
            by=report.by,
            buckets=[BucketView.of(b) for b in report.buckets],
            groups=[
                DnfbGroupView(key=g.key, buckets=[BucketView.of(b) for b in g.buckets])
                for g in report.groups
            ],
            charges_available=report.charges_available,
        )


class ClassFiguresView(BaseModel):
    """A coder's figures for one encounter class."""

    model_config = ConfigDict(populate_by_name=True)

    class_: str = Field(alias="class", serialization_alias="class")
    charts: int
    hours: float
    charts_per_hour: float | None
    standard: float | None
    percent_of_standard: float | None

    @classmethod
    def of(cls, figures: ClassFigures) -> ClassFiguresView:
        """Build the view of one class's figures."""
        return cls(
            class_=figures.encounter_class,
            charts=figures.charts,
            hours=figures.hours,
            charts_per_hour=figures.charts_per_hour,
            standard=figures.standard,
            percent_of_standard=figures.percent_of_standard,
        )


class CoderFiguresView(BaseModel):
    """One coder: charts submitted, hours of the leases that ended in them, charts per hour."""

    coder: str
    charts: int
    hours: float
    charts_per_hour: float | None
    percent_of_standard: float | None
    qa_reviewed: int
    qa_accepted: int
    accuracy_percent: float | None
    case_mix: float | None
    by_class: list[ClassFiguresView]

    @classmethod
    def of(cls, figures: CoderFigures) -> CoderFiguresView:
        """Build the view of one coder's figures."""
        return cls(
            coder=figures.coder,
            charts=figures.charts,
            hours=figures.hours,
            charts_per_hour=figures.charts_per_hour,
            percent_of_standard=figures.percent_of_standard,
            qa_reviewed=figures.reviewed,
            qa_accepted=figures.accepted,
            accuracy_percent=figures.accuracy_percent,
            case_mix=figures.case_mix,
            by_class=[ClassFiguresView.of(c) for c in figures.by_class],
        )


class ProductivityView(BaseModel):
    """`GET /api/v1/reports/productivity`: one item per coder over [since, until)."""

    since: datetime
    until: datetime
    items: list[CoderFiguresView]

    @classmethod
    def of(cls, report: ProductivityReport) -> ProductivityView:
        """Build the answer from a report."""
        return cls(
            since=report.since,
            until=report.until,
            items=[CoderFiguresView.of(c) for c in report.coders],
        )


class MixFiguresView(BaseModel):
    """One group's inpatient stays: case-mix index and CC/MCC capture rate."""

    key: str
    stays: int
    weighted_stays: int
    cmi: float | None
    capture_stays: int
    captured: int
    capture_rate: float | None

    @classmethod
    def of(cls, figures: MixFigures) -> MixFiguresView:
        """Build the view of one group."""
        return cls(
            key=figures.key,
            stays=figures.stays,
            weighted_stays=figures.weighted,
            cmi=figures.cmi,
            capture_stays=figures.counted,
            captured=figures.captured,
            capture_rate=figures.capture_rate,
        )


class MixView(BaseModel):
    """`GET /api/v1/reports/casemix` and `/cc-capture`: per coder, queue or month."""

    since: datetime
    until: datetime
    by: str
    groups: list[MixFiguresView]
    total: MixFiguresView

    @classmethod
    def of(cls, report: MixReport) -> MixView:
        """Build the answer from a report."""
        return cls(
            since=report.since,
            until=report.until,
            by=report.by,
            groups=[MixFiguresView.of(g) for g in report.groups],
            total=MixFiguresView.of(report.total),
        )


class ShiftView(BaseModel):
    """One DRG shift: kind `final` (baseline to final) or `qa` (final to after QA)."""

    kind: str
    work_item: int
    at: datetime | None
    from_drg: str
    to_drg: str
    weight_change: float | None
    coder: str
    by: str
    why: str
    review: int | None
    query: int | None = None  # a physician query answered before submit (its answer sealed)

    @classmethod
    def of(cls, shift: Shift) -> ShiftView:
        """Build the view of one shift."""
        return cls(
            kind=shift.kind,
            work_item=shift.work_item_id,
            at=shift.at,
            from_drg=shift.from_drg,
            to_drg=shift.to_drg,
            weight_change=shift.weight_change,
            coder=shift.coder,
            by=shift.by,
            why=shift.why,
            review=shift.review_id,
            query=shift.query_id,
        )


class ShiftsView(BaseModel):
    """`GET /api/v1/reports/drg-shifts`: every shift in the window, newest first."""

    since: datetime
    until: datetime
    items: list[ShiftView]

    @classmethod
    def of(cls, report: ShiftReport) -> ShiftsView:
        """Build the answer from a report."""
        return cls(
            since=report.since,
            until=report.until,
            items=[ShiftView.of(s) for s in report.shifts],
        )
