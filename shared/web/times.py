"""Times on pages, as a person in Lund reads them: in Lund's time zone, in the page's language."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from flask_babel import get_locale

#: Where CIM is run: times are entered and shown in this zone.
LOCAL = ZoneInfo("Europe/Stockholm")
#: "torsdag 26 mars 2026, 15:00" / "Thursday 26 March 2026, 15:00": 24-hour in both languages.
DAY_AND_TIME = "EEEE d MMMM y, HH:mm"
DAY = "d MMMM y"


def local_time(value: str | date | datetime | None, pattern: str = DAY_AND_TIME) -> str:
    """An ISO time (or a datetime with its offset) as Lund's local time in the page's language;
    a calendar date (a `date`) as it is, in the same words; a value that is no time is shown as
    it is."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return str(format_date(value, pattern, locale=str(get_locale() or "en")))
    try:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(value or "")
    except ValueError:
        return str(value or "")
    return str(format_datetime(moment, pattern, tzinfo=LOCAL, locale=str(get_locale() or "en")))


def install_time_filters(app: object) -> None:
    """`|local_datetime` and `|local_date` for the app's templates."""
    filters = app.jinja_env.filters  # type: ignore[attr-defined]
    filters["local_datetime"] = local_time
    filters["local_date"] = lambda value: local_time(value, DAY)
