"""The reports as CSV, through the one formula-safe writer (`server.csvsafe`)."""

from __future__ import annotations

import io

from server.csvsafe import SafeWriter
from server.reports.service import DnfbReport, ProductivityReport

DNFB_COLUMNS = ["as_of", "group_by", "group", "bucket", "count", "charges"]
PRODUCTIVITY_COLUMNS = ["since", "until", "coder", "class", "charts", "hours", "charts_per_hour"]
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
