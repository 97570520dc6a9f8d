"""What a diploma says: the one value the issuing workflow builds and the PDF and the Open Badges
credential are made from.

Pure data, no I/O. The issuing workflow (`assessment_service/diplomas.py`) builds a
`DiplomaDocument` from its `DiplomaIssued` event and the read models; the renderer
(`assessment_service/diploma_pdf.py`) turns it into a PDF and the credential module
(`assessment_service/credentials.py`) into a signed `AchievementCredential`. Every text that the
document shows in both languages carries both (`Text`), so one document renders the same in any
interface language. Dates are calendar dates in Lund's time (Europe/Stockholm).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

#: Where a merit took place, in the order the diploma groups them.
SETTINGS = ("abroad", "at_home", "digital")


@dataclass(frozen=True)
class Text:
    """One text in English and Swedish."""

    en: str
    sv: str


@dataclass(frozen=True)
class Merit:
    """One international activity the diploma lists."""

    title: str  # as the student stated it (personal data: gone after erasure)
    kind: Text  # the catalogue's name of its kind
    setting: str  # one of SETTINGS
    country_code: str | None  # ISO 3166-1 alpha-2, or None (digital, or at home)
    organiser: str | None
    start_date: date
    end_date: date


@dataclass(frozen=True)
class Presentation:
    """The presentation the holder gave."""

    kind: Text  # e.g. International Café / Internationellt café
    held_on: date
    place: str


@dataclass(frozen=True)
class Signatory:
    """Who signs the diploma (configuration per department and period)."""

    name: str
    title: Text


@dataclass(frozen=True)
class DiplomaDocument:
    """Everything the PDF and the credential show; nothing else about the holder."""

    number: str  # unique per department and year, e.g. CIM-SOCSW-2027-0025
    verification_code: str  # the unguessable code of /verify/<code>
    verify_url: str  # absolute URL of the public verification page (the QR code's target)
    issued_on: date
    holder_name: str
    university: Text  # Lund University / Lunds universitet
    faculty: Text
    department: Text
    department_code: str  # e.g. SOCSW
    rule_set: str  # CODE@version the diploma was issued under
    merits: tuple[Merit, ...]
    presentation: Presentation | None
    signatories: tuple[Signatory, ...]

    def merits_in(self, setting: str) -> tuple[Merit, ...]:
        """The merits of one setting, by start date then title (the diploma's grouping)."""
        return tuple(sorted((m for m in self.merits if m.setting == setting),
                            key=lambda m: (m.start_date, m.end_date, m.title)))


def sample_document() -> DiplomaDocument:
    """A synthetic diploma (no real person) for previews, tests and benchmarks."""
    return DiplomaDocument(
        number="CIM-SOCSW-2027-0025",
        verification_code="7QK3-M9TD-X2PA-H4RC",
        verify_url="http://127.0.0.1:8001/verify/7QK3-M9TD-X2PA-H4RC",
        issued_on=date(2027, 6, 14),
        holder_name="Ingrid Exempelsson",
        university=Text("Lund University", "Lunds universitet"),
        faculty=Text("Faculty of Social Sciences", "Samhällsvetenskapliga fakulteten"),
        department=Text("School of Social Work", "Socialhögskolan"),
        department_code="SOCSW",
        rule_set="SOCSW@1",
        merits=(
            Merit("Exchange term at a partner university", Text("Exchange studies", "Utbytesstudier"),
                  "abroad", "DE", "Freie Universität Berlin", date(2026, 2, 1), date(2026, 6, 30)),
            Merit("Summer school on migration and welfare", Text("Summer school", "Sommarskola"),
                  "abroad", "NL", "University of Amsterdam", date(2026, 7, 6), date(2026, 7, 24)),
            Merit("Buddy for incoming exchange students", Text("Buddy programme", "Faddrerverksamhet"),
                  "at_home", None, "Lund University", date(2025, 8, 20), date(2025, 12, 20)),
            Merit("Webinar series on social work in Europe", Text("International webinar",
                  "Internationellt webbinarium"), "digital", None, "EASSW", date(2025, 3, 3), date(2025, 3, 31)),
        ),
        presentation=Presentation(Text("International Café", "Internationellt café"), date(2027, 5, 20),
                                  "Allhelgona kyrkogata 8, Lund"),
        signatories=(
            Signatory("Karin Provnamn", Text("Head of Department", "Prefekt")),
            Signatory("Erik Testberg", Text("CIM Coordinator", "CIM-samordnare")),
        ),
    )
