"""The reports as CSV, through the one formula-safe writer (`server.csvsafe`)."""

from __future__ import annotations

import io

from server.csvsafe import SafeWriter
from server.reports.service import DnfbReport, ProductivityReport
from server.reports.work import HOLD_LABELS, ThroughputReport, WorkReport

DNFB_COLUMNS = ["as_of", "group_by", "group", "bucket", "count", "charges"]
PRODUCTIVITY_COLUMNS = ["since", "until", "coder", "class", "charts", "hours", "charts_per_hour"]
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
        for klass, figures in [(ALL, coder), *((c.encounter_class, c) for c in coder.by_class)]:
            writer.writerow(
                [
                    since,
                    until,
                    coder.coder,
                    klass,
                    figures.charts,
                    figures.hours,
                    figures.charts_per_hour,
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
