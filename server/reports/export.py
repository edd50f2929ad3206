"""The reports as CSV, through the one formula-safe writer (`server.csvsafe`)."""

from __future__ import annotations

import io

from server.csvsafe import SafeWriter
from server.reports.casemix import MixReport, ShiftReport
from server.reports.service import DnfbReport, ProductivityReport
from server.reports.work import HOLD_LABELS, ThroughputReport, WorkReport

DNFB_COLUMNS = ["as_of", "group_by", "group", "bucket", "count", "charges"]
PRODUCTIVITY_COLUMNS = [
    "since",
    "until",
    "coder",
    "class",
    "charts",
    "hours",
    "charts_per_hour",
    "standard",
    "percent_of_standard",
    "qa_reviewed",
    "qa_accepted",
    "accuracy_percent",
    "case_mix",
]
MIX_COLUMNS = [
    "since",
    "until",
    "group_by",
    "group",
    "stays",
    "weighted_stays",
    "cmi",
    "capture_stays",
    "captured",
    "capture_rate",
]
SHIFT_COLUMNS = [
    "kind",
    "work_item",
    "at",
    "from_drg",
    "to_drg",
    "weight_change",
    "coder",
    "by",
    "why",
]
WORK_COLUMNS = ["as_of", "figure", "key", "bucket", "count", "oldest_days"]
THROUGHPUT_COLUMNS = ["day", "class", "charts"]
ALL = "all"


def dnfb_csv(report: DnfbReport) -> str:
    """One row per group and bucket, then the totals as group `all` (charges empty: unknown)."""
    out = io.StringIO()
    writer = SafeWriter(out)
    writer.writerow(DNFB_COLUMNS)
    as_of = report.as_of.isoformat()
    for group in report.groups:
        for b in group.buckets:
            writer.writerow([as_of, report.by, group.key, b.label, b.count, b.charges])
    for b in report.buckets:
        writer.writerow([as_of, report.by, ALL, b.label, b.count, b.charges])
    return out.getvalue()


def productivity_csv(report: ProductivityReport) -> str:
    """One row per coder (class `all`) followed by a row per encounter class they coded."""
    out = io.StringIO()
    writer = SafeWriter(out)
    writer.writerow(PRODUCTIVITY_COLUMNS)
    since, until = report.since.isoformat(), report.until.isoformat()
    for coder in report.coders:
        writer.writerow(
            [
                since,
                until,
                coder.coder,
                ALL,
                coder.charts,
                coder.hours,
                coder.charts_per_hour,
                None,
                coder.percent_of_standard,
                coder.reviewed,
                coder.accepted,
                coder.accuracy_percent,
                coder.case_mix,
            ]
        )
        for k in coder.by_class:
            writer.writerow(
                [
                    since,
                    until,
                    coder.coder,
                    k.encounter_class,
                    k.charts,
                    k.hours,
                    k.charts_per_hour,
                    k.standard,
                    k.percent_of_standard,
                    None,
                    None,
                    None,
                    None,
                ]
            )
    return out.getvalue()


def mix_csv(report: MixReport) -> str:
    """A row per group (coder, queue or month), then the totals as group `all`."""
    out = io.StringIO()
    writer = SafeWriter(out)
    writer.writerow(MIX_COLUMNS)
    since, until = report.since.isoformat(), report.until.isoformat()
    for g in [*report.groups, report.total]:
        writer.writerow(
            [
                since,
                until,
                report.by,
                g.key,
                g.stays,
                g.weighted,
                g.cmi,
                g.counted,
                g.captured,
                g.capture_rate,
            ]
        )
    return out.getvalue()


def shifts_csv(report: ShiftReport) -> str:
    """A row per DRG shift, newest first (a QA reviewer's sealed reason is not in it)."""
    out = io.StringIO()
    writer = SafeWriter(out)
    writer.writerow(SHIFT_COLUMNS)
    for s in report.shifts:
        writer.writerow(
            [
                s.kind,
                s.work_item_id,
                s.at.isoformat() if s.at else None,
                s.from_drg,
                s.to_drg,
                s.weight_change,
                s.coder,
                s.by,
                s.why,
            ]
        )
    return out.getvalue()


def work_csv(report: WorkReport) -> str:
    """Holds (a row per reason and days-on-hold bucket), then overdue items per queue."""
    out = io.StringIO()
    writer = SafeWriter(out)
    writer.writerow(WORK_COLUMNS)
    as_of = report.as_of.isoformat()
    for row in report.holds:
        for label in HOLD_LABELS:
            writer.writerow([as_of, "on_hold", row.reason, label, row.counts[label], None])
    for over in report.overdue:
        writer.writerow([as_of, "overdue", over.queue, None, over.count, over.oldest_days])
    return out.getvalue()


def throughput_csv(report: ThroughputReport) -> str:
    """A row per day with the total (class `all`), then one per class coded that day."""
    out = io.StringIO()
    writer = SafeWriter(out)
    writer.writerow(THROUGHPUT_COLUMNS)
    for day in report.days:
        writer.writerow([day.day.isoformat(), ALL, day.total])
        for klass in sorted(day.by_class):
            writer.writerow([day.day.isoformat(), klass, day.by_class[klass]])
    return out.getvalue()
