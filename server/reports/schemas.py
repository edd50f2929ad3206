"""Response models of the reports API (API.md "Reports"): ids, counts, classes and times only."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

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

    @classmethod
    def of(cls, figures: ClassFigures) -> ClassFiguresView:
        """Build the view of one class's figures."""
        return cls(
            class_=figures.encounter_class,
            charts=figures.charts,
            hours=figures.hours,
            charts_per_hour=figures.charts_per_hour,
        )


class CoderFiguresView(BaseModel):
    """One coder: charts submitted, hours of the leases that ended in them, charts per hour."""

    coder: str
    charts: int
    hours: float
    charts_per_hour: float | None
    by_class: list[ClassFiguresView]

    @classmethod
    def of(cls, figures: CoderFigures) -> CoderFiguresView:
        """Build the view of one coder's figures."""
        return cls(
            coder=figures.coder,
            charts=figures.charts,
            hours=figures.hours,
            charts_per_hour=figures.charts_per_hour,
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
