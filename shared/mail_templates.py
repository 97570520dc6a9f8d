"""Mail templates as files: `templates/mail/<name>/<locale>.txt` and `<locale>.html`, jinja2.

The `.txt` file holds two blocks, `subject` and `text` (plain text, not escaped); the `.html` file
extends `templates/mail/_layout.html` and fills `content` (autoescaped: a name such as
`<b>Ann</b>` arrives as text). `render(name, locale, context)` answers a `Rendered` (subject, text,
html and any attachment: the presentation's .ics); an unknown name is refused (UnknownTemplate),
an unknown locale falls back to English. `TEMPLATES` is the registry: every template with what it
is for and a sample context, which the staff preview (/mail-templates) and the tests render.

Contexts hold JSON values only (they are stored, sealed, in the outbox): dates and times as ISO
strings, formatted here by the `date` and `datetime` filters in the mail's language.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any

import jinja2

from shared.config import ROOT

TEMPLATE_DIR = ROOT / "templates" / "mail"
LOCALES = ("en", "sv")


class UnknownTemplate(LookupError):
    """No mail template by this name."""


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str
    #: (file name, MIME type, bytes) each.
    attachments: tuple[tuple[str, str, bytes], ...] = ()


@dataclass(frozen=True)
class Template:
    """One notification: what it is for, who gets it, and a sample context for the preview."""

    name: str
    purpose: str
    recipient: str
    sample: Mapping[str, Any]
    attach: Callable[[Mapping[str, Any], str], tuple[tuple[str, str, bytes], ...]] | None = field(default=None)


_MONTHS = {
    "en": ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"),
    "sv": ("januari", "februari", "mars", "april", "maj", "juni", "juli", "augusti", "september", "oktober",
           "november", "december"),
}


def _parse(value: Any) -> datetime | date | None:
    if isinstance(value, datetime | date):
        return value
    if not value:
        return None
    text = str(value)
    try:
        return datetime.fromisoformat(text) if "T" in text else date.fromisoformat(text)
    except ValueError:
        return None


def format_date(value: Any, locale: str) -> str:
    """"4 December 2026" / "4 december 2026"."""
    moment = _parse(value)
    if moment is None:
        return str(value or "")
    return f"{moment.day} {_MONTHS.get(locale, _MONTHS['en'])[moment.month - 1]} {moment.year}"


def format_datetime(value: Any, locale: str) -> str:
    """"4 December 2026, 13:15" / "4 december 2026 kl. 13.15" (times as given: local time)."""
    moment = _parse(value)
    if not isinstance(moment, datetime):
        return format_date(value, locale)
    if locale == "sv":
        return f"{format_date(moment, locale)} kl. {moment:%H.%M}"
    return f"{format_date(moment, locale)}, {moment:%H:%M}"


@cache
def _environment(autoescape: bool) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    return env


def _render_block(tmpl: jinja2.Template, block: str, context: dict[str, Any]) -> str:
    if block not in tmpl.blocks:
        raise UnknownTemplate(f"{tmpl.name} has no {block} block")
    return "".join(tmpl.blocks[block](tmpl.new_context(context))).strip()


def known(name: str) -> bool:
    return name in TEMPLATES


def render(name: str, locale: str, context: Mapping[str, Any]) -> Rendered:
    """The subject, plain text and HTML of template `name` in `locale` (en, sv; else en)."""
    if name not in TEMPLATES:
        raise UnknownTemplate(name)
    lang = locale if locale in LOCALES else "en"
    values = {
        **dict(context),
        "locale": lang,
        "date": lambda v: format_date(v, lang),
        "datetime": lambda v: format_datetime(v, lang),
    }
    text_tmpl = _environment(False).get_template(f"{name}/{lang}.txt")
    html_tmpl = _environment(True).get_template(f"{name}/{lang}.html")
    subject = " ".join(_render_block(text_tmpl, "subject", values).split())
    text = _render_block(text_tmpl, "text", values) + "\n"
    html = html_tmpl.render(values)
    attach = TEMPLATES[name].attach
    return Rendered(subject, text, html, attach(context, lang) if attach else ())


# -- the presentation's invitation ------------------------------------------------------------------
def presentation_ics(context: Mapping[str, Any], locale: str) -> tuple[tuple[str, str, bytes], ...]:
    """An iCalendar invitation (METHOD:PUBLISH, one VEVENT) for a booked presentation. Its UID is
    the occasion's id, so a calendar that gets it twice keeps one event."""
    from zoneinfo import ZoneInfo

    import icalendar

    def local(value: Any) -> datetime:  # occasions are given in Lund's local time
        moment = datetime.fromisoformat(str(value))
        return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo("Europe/Stockholm"))

    starts = local(context["starts_at"])
    ends = local(context["ends_at"]) if context.get("ends_at") else starts + timedelta(hours=1)
    cal = icalendar.Calendar()
    cal.add("prodid", "-//Lund University//CIM//EN")
    cal.add("version", "2.0")
    cal.add("method", "PUBLISH")
    event = icalendar.Event()
    event.add("uid", f"cim-presentation-{context.get('occasion_id', 'x')}@cim")
    event.add("summary", "CIM-presentation" if locale == "sv" else "CIM presentation")
    event.add("dtstart", starts)
    event.add("dtend", ends)
    event.add("dtstamp", starts.astimezone(UTC))
    if context.get("location"):
        event.add("location", str(context["location"]))
    cal.add_component(event)
    return (("presentation.ics", "text/calendar", cal.to_ical()),)


_MY_CIM = "https://cim.example.org/my-cim"
_ASSESSMENT = "https://cim.example.org:8001"
_SOCSW = {"en": "School of Social Work", "sv": "Socialhögskolan"}

TEMPLATES: dict[str, Template] = {
    t.name: t
    for t in (
        Template("sign_in_link", "A one-time sign-in link", "student",
                 {"name": "Alex Exempel", "url": "https://cim.example.org/auth/link/v1.sample", "minutes": 15}),
        Template("sign_in_locked", "Sign-ins to a staff account are paused (both languages in one mail)", "staff",
                 {"name": "Sam Granskare", "minutes": 5, "sign_in_url": "https://cim.example.org/auth/sign-in"}),
        Template("staff_setup_link", "A one-time link to choose a password and enrol an authenticator", "staff",
                 {"name": "Sam Granskare", "url": "https://cim.example.org:8001/auth/setup/v1.sample", "hours": 72}),
        Template("registration_confirmed", "The student registered for CIM", "student",
                 {"name": "Alex Exempel", "department": "Department of Sociology", "my_cim_url": _MY_CIM}),
        Template("activity_ruled", "The assessor group ruled on an activity kind the catalogue lacked", "student",
                 {"name": "Alex Exempel", "activity": "Online seminar series with Nairobi", "accepted": True,
                  "reason": "It meets the criteria for an international webinar.", "my_cim_url": _MY_CIM}),
        Template("report_received", "The student's report (or a resubmission) arrived", "student",
                 {"name": "Alex Exempel", "round": 1, "my_cim_url": _MY_CIM}),
        Template("report_assigned", "A new report to review", "assessor",
                 {"name": "Sam Granskare", "department": "Department of Sociology", "round": 1,
                  "review_url": "https://cim.example.org:8001/reports/r-1/reviews", "due": "2027-01-15"}),
        Template("revision_requested", "The report needs a revision (with the joint summary)", "student",
                 {"name": "Alex Exempel", "summary": "Please say more about what you learnt from the exchange term, "
                  "and how it changed your view of your field.", "my_cim_url": _MY_CIM}),
        Template("report_approved", "The report is approved: how to book a presentation", "student",
                 {"name": "Alex Exempel", "presentations_url": f"{_MY_CIM}#presentations"}),
        Template("report_rejected", "The report is rejected", "student",
                 {"name": "Alex Exempel", "reason": "The activities logged do not add up to the required scope.",
                  "my_cim_url": _MY_CIM}),
        Template("presentation_booked", "A presentation is booked (with an .ics invitation)", "student",
                 {"name": "Alex Exempel", "occasion_id": "p-1", "starts_at": "2027-02-10T13:15:00",
                  "ends_at": "2027-02-10T15:00:00", "location": "Room G:323, Gamla kirurgen", "my_cim_url": _MY_CIM},
                 attach=presentation_ics),
        Template("diploma_issued", "The diploma is issued", "student",
                 {"name": "Alex Exempel", "diploma_url": f"{_MY_CIM}/diploma"}),
        Template("deadline_reminder", "The deadline is near and no report is under review", "student",
                 {"name": "Alex Exempel", "deadline": "2027-06-30", "days_left": 14, "my_cim_url": _MY_CIM}),
        Template("deregistered", "The student passed the deadline and is deregistered", "student",
                 {"name": "Alex Exempel", "deadline": "2027-06-30", "contact": "cim@example.org"}),
        Template("deadline_extended", "The coordinator extended the deadline", "student",
                 {"name": "Alex Exempel", "deadline": "2027-12-31", "reason": "Parental leave during the spring term.",
                  "my_cim_url": _MY_CIM}),
        Template("reinstated", "The coordinator reinstated a deregistered student", "student",
                 {"name": "Alex Exempel", "deadline": "2027-12-31", "my_cim_url": _MY_CIM}),
        Template("booking_cancelled", "A coordinator cancelled the booking, or the occasion was cancelled", "student",
                 {"name": "Alex Exempel", "starts_at": "2027-02-10T13:15:00", "location": "Room G:323, Gamla kirurgen",
                  "occasion_cancelled": True, "presentations_url": f"{_ASSESSMENT}/students/s-1/presentation"}),
        Template("reviews_overdue", "Reviews past their due date (first day overdue, then weekly)", "assessor",
                 {"name": "Sam Granskare", "queue_url": f"{_ASSESSMENT}/queue?assessor=me", "reviews": [
                     {"department": "SOCSW", "department_name": _SOCSW, "round": 1, "due": "2027-01-15",
                      "days_overdue": 1, "review_url": f"{_ASSESSMENT}/reports/r-1"},
                     {"department": "SOCSW", "department_name": _SOCSW, "round": 2, "due": "2027-01-08",
                      "days_overdue": 8, "review_url": f"{_ASSESSMENT}/reports/r-2"}]}),
        Template("coordinator_digest", "The coordinator's Monday digest (counts and links, no names)", "staff",
                 {"name": "Kim Koordinator", "week": "2027-W03", "since": "2027-01-11", "horizon_days": 30,
                  "departments": [{"code": "SOCSW", "department_name": _SOCSW, "waiting": 3, "overdue": 1,
                                   "disagreements": 1, "deadlines_soon": 12, "deregistered": 2, "registered": 5}],
                  "queue_url": f"{_ASSESSMENT}/queue?state=waiting", "agenda_url": f"{_ASSESSMENT}/agenda",
                  "deadlines_url": f"{_ASSESSMENT}/deadlines?show=close",
                  "deregistered_url": f"{_ASSESSMENT}/deadlines?show=deregistered"}),
    )
}
