"""How values read on every page: times in the hospital's zone in one format, ages, notes.

Registered as Jinja filters (`when`, `day`, `age`, `stay_days`, `note`, `midsentence`). The
note filter escapes everything first and only then adds its own tags, so text from the source
system can never become markup.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape

from server.config import get_settings


def _zone() -> ZoneInfo:
    return ZoneInfo(get_settings().audit_timezone)


def _as_datetime(value: object) -> datetime | None:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day, tzinfo=UTC)
    elif isinstance(value, str) and value:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def when(value: object) -> str:
    """A moment as '16 Apr 2010 16:28 EDT' in the hospital's zone ('' if none)."""
    moment = _as_datetime(value)
    if moment is None:
        return "" if value in (None, "") else str(value)
    local = moment.astimezone(_zone())
    return f"{local:%d %b %Y %H:%M} {local.tzname() or ''}".strip()


def countdown(value: object) -> str:
    """Minutes and seconds from now until a moment, as the page's countdown shows them."""
    moment = _as_datetime(value)
    if moment is None:
        return ""
    left = int((moment - datetime.now(UTC)).total_seconds())
    return f"{left // 60}:{left % 60:02d}" if left > 0 else "expired"


def day(value: object) -> str:
    """A date (or the day of a moment, in the hospital's zone) as '16 Apr 2010'."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return f"{value:%d %b %Y}"
    if isinstance(value, str) and len(value) == 10:
        try:
            return f"{date.fromisoformat(value):%d %b %Y}"
        except ValueError:
            return value
    moment = _as_datetime(value)
    return f"{moment.astimezone(_zone()):%d %b %Y}" if moment else ""


def age(birth: object, at: object = None) -> str:
    """Whole years between a birth date and `at` (the date of service; today if none)."""
    born = _as_datetime(birth)
    then = _as_datetime(at) or datetime.now(UTC)
    if born is None:
        return ""
    years = then.year - born.year - ((then.month, then.day) < (born.month, born.day))
    if years >= 2:
        return f"{years} y"
    months = (then.year - born.year) * 12 + then.month - born.month - (then.day < born.day)
    return f"{max(months, 0)} mo"


def stay_days(start: object, end: object) -> str:
    """Length of stay in days (midnights), for inpatient stays ('' without both dates)."""
    first, last = _as_datetime(start), _as_datetime(end)
    if first is None or last is None:
        return ""
    nights = (last.astimezone(_zone()).date() - first.astimezone(_zone()).date()).days
    return f"{nights} day{'s' if nights != 1 else ''}"


_HEADING = re.compile(r"^#{1,6}\s+(.*)$")
_BULLET = re.compile(r"^\s*[-*•]\s+(.*)$")


def note(text: object) -> Markup:
    """A clinical note made readable: '# Heading' lines, bullet lists, paragraphs."""
    out: list[str] = []
    para: list[str] = []
    items: list[str] = []

    def flush() -> None:
        if para:
            out.append("<p>" + "<br>".join(para) + "</p>")
            para.clear()
        if items:
            out.append("<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>")
            items.clear()

    for raw in str(text or "").splitlines():
        line = str(escape(raw.rstrip()))
        heading, bullet = _HEADING.match(line), _BULLET.match(line)
        if heading:
            flush()
            out.append(f"<h4>{heading.group(1)}</h4>")
        elif bullet:
            if para:
                flush()
            items.append(bullet.group(1))
        elif not line.strip():
            flush()
        else:
            if items:
                flush()
            para.append(line.strip())
    flush()
    # Built only from escaped text and our own tags (h4, p, br, ul, li).
    return Markup("".join(out))  # noqa: S704  # nosec B704


def midsentence(title: object) -> str:
    """A title inside a sentence, acronyms kept: 'Reason (CARC)' -> 'reason (CARC)'."""
    words = str(title or "").split(" ")
    return " ".join(w if sum(c.isupper() for c in w) > 1 else w.lower() for w in words)


def money(cents: object) -> str:
    """Whole cents as dollars with thousands separators: 120000 -> '1,200.00'."""
    if not isinstance(cents, int):
        return ""
    return f"{cents / 100:,.2f}"
