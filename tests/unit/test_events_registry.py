"""The intake event registry: stored events of every schema version stay readable (upcasting), and
no stored data, however malformed, makes the decoder fail with anything but a declared error
(bar S8; the key is in tests/README.md).

Fixtures under tests/fixtures/events/<Type>.v<N>.json are events as once stored; never edit one,
add a file for each new schema version (a test below insists on it).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intake_service import events as intake_events
from intake_service.events import REGISTRY, ActivityLogged, upcast_activity_logged_v1_to_v2
from shared.errors import UnknownEventType, ValidationFailed
from shared.events import RecordedEvent

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "events"


def load_fixture(path: Path) -> RecordedEvent:
    doc = json.loads(path.read_text(encoding="utf-8"))
    return RecordedEvent(
        position=doc["position"],
        event_id=doc["event_id"],
        stream_id=doc["stream_id"],
        version=doc["version"],
        type=doc["type"],
        schema_version=doc["schema_version"],
        data=doc["data"],
        metadata=doc["metadata"],
        occurred_at=datetime.fromisoformat(doc["occurred_at"]),
        recorded_at=datetime.fromisoformat(doc["recorded_at"]),
    )


FIXTURE_FILES = sorted(FIXTURES.glob("*.v*.json"))
STORED = {path.name: load_fixture(path) for path in FIXTURE_FILES}


def fixture(name: str) -> RecordedEvent:
    return STORED[name]


# -- every stored version stays readable -------------------------------------------------------


def test_every_registered_type_and_version_has_a_stored_fixture() -> None:
    wanted = {f"{name}.v{v}.json" for name in REGISTRY.names() for v in range(1, REGISTRY.current_version(name) + 1)}
    assert wanted <= set(STORED), f"add fixtures for: {sorted(wanted - set(STORED))}"


@pytest.mark.parametrize("name", sorted(STORED))
def test_stored_fixture_decodes_to_the_current_dataclass(name: str) -> None:
    stored = fixture(name)
    assert name == f"{stored.type}.v{stored.schema_version}.json"

    event = REGISTRY.decode_recorded(stored)

    assert type(event) is getattr(intake_events, stored.type)
    assert dataclasses.is_dataclass(event)
    # What was decoded encodes again under the current schema, valid and at the current version.
    type_name, version, data = REGISTRY.encode(event)
    assert (type_name, version) == (stored.type, REGISTRY.current_version(stored.type))
    assert REGISTRY.decode(type_name, version, data) == event


def test_activity_logged_v1_abroad_upcasts_to_a_v2_activity_abroad() -> None:
    event = REGISTRY.decode_recorded(fixture("ActivityLogged.v1.json"))

    assert event == ActivityLogged(
        activity_id="6c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f",
        kind="exchange",
        title="Exchange term at Universidad de Granada",
        organiser="Universidad de Granada",
        setting="abroad",
        country_code="ES",
        start_date=date(2025, 1, 20),
        end_date=date(2025, 6, 6),
        hours=None,
        description="Courses in social policy, taught in Spanish.",
    )


def test_activity_logged_v1_at_home_upcasts_to_at_home_in_sweden() -> None:
    stored = fixture("ActivityLogged.v1.json")
    data = dict(stored.data, abroad=False)
    del data["country"]

    event = REGISTRY.decode("ActivityLogged", 1, data)

    assert (event.setting, event.country_code, event.hours) == ("at_home", "SE", None)


def test_activity_logged_v2_is_read_as_stored() -> None:
    stored = fixture("ActivityLogged.v2.json")
    event = REGISTRY.decode_recorded(stored)
    assert (event.setting, event.country_code, event.hours) == ("digital", None, 40)


def test_upcasting_does_not_change_the_stored_data() -> None:
    stored = fixture("ActivityLogged.v1.json")
    before = copy.deepcopy(stored.data)
    REGISTRY.decode_recorded(stored)
    REGISTRY.upcast(stored.type, stored.schema_version, stored.data)
    assert stored.data == before


CURRENT = sorted(n for n, e in STORED.items() if e.schema_version == REGISTRY.current_version(e.type))


@pytest.mark.parametrize("name", CURRENT)
def test_a_stored_event_of_the_current_version_encodes_again_to_the_same_bytes(name: str) -> None:
    stored = fixture(name)
    _, _, data = REGISTRY.encode(REGISTRY.decode_recorded(stored))
    # Same keys, values and key order: what the store writes now is what it wrote before.
    assert json.dumps(data) == json.dumps(stored.data)


# Which fields are sealed with the student's key: a field that loses the mark is written in clear.
PERSONAL_FIELDS = {
    "StudentRegistered": {"name", "email", "university_id"},
    "ActivityLogged": {"title", "organiser", "description"},
    "ActivityAmended": {"title", "organiser", "description"},
    "ActivityWithdrawn": {"reason"},
    "AttachmentUploaded": {"filename"},
    "ReportSubmitted": {"answers"},
    "ReportResubmitted": {"answers"},
    "RegistrationWithdrawn": {"reason"},
}


@pytest.mark.parametrize("type_name", REGISTRY.names())
def test_personal_fields_are_marked_on_the_event(type_name: str) -> None:
    schema = REGISTRY.schema(type_name)
    marked = {name for name, f in schema.fields.items() if f.metadata.get("personal")}
    assert marked == PERSONAL_FIELDS.get(type_name, set())
    assert all(schema.fields[name].allow_none for name in marked)  # None once the key is destroyed


def test_upcaster_names_its_versions() -> None:
    assert upcast_activity_logged_v1_to_v2.__name__ == "upcast_activity_logged_v1_to_v2"
    assert REGISTRY.current_version("ActivityLogged") == 2


# -- what this code cannot read -------------------------------------------------------------


@pytest.mark.parametrize("type_name", ["StudentDeregistered", "", "activitylogged", "ActivityLogged "])
def test_unknown_type_is_an_unknown_event_type(type_name: str) -> None:
    with pytest.raises(UnknownEventType):
        REGISTRY.decode(type_name, 1, {})


@pytest.mark.parametrize("version", [0, -1, 3, 99])
def test_unknown_version_is_an_unknown_event_type(version: int) -> None:
    data = fixture("ActivityLogged.v2.json").data
    with pytest.raises(UnknownEventType):
        REGISTRY.decode("ActivityLogged", version, data)
    with pytest.raises(UnknownEventType):
        REGISTRY.upcast("ActivityLogged", version, data)


def test_stored_data_that_does_not_load_is_an_unknown_event_type() -> None:
    data = dict(fixture("StudiesCompleted.v1.json").data, completed_on="not a date")
    with pytest.raises(UnknownEventType, match="does not load"):
        REGISTRY.decode("StudiesCompleted", 1, data)


def test_encoding_an_unregistered_object_is_refused() -> None:
    with pytest.raises(UnknownEventType):
        REGISTRY.encode(object())


def test_encoding_invalid_event_names_the_field() -> None:
    event = dataclasses.replace(REGISTRY.decode_recorded(fixture("ActivityLogged.v2.json")), setting="orbit")
    with pytest.raises(ValidationFailed) as failed:
        REGISTRY.encode(event)
    assert "setting" in failed.value.fields


# -- S8: fuzzing the decoder and the upcasters --------------------------------------------------

#: What the decoder may raise on purpose. Anything else (TypeError, KeyError, AttributeError...)
#: would surface as a 500 or stop a projection: a crash.
DECLARED = (UnknownEventType, ValidationFailed)

json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
field_names = st.sampled_from(
    sorted({key for stored in STORED.values() for key in stored.data} | {"abroad", "country", "setting"})
)


@st.composite
def mangled_stored_data(draw: st.DrawFn) -> tuple[str, int, dict[str, Any]]:
    """A stored fixture with some fields dropped, replaced by arbitrary JSON, or added."""
    stored = draw(st.sampled_from(list(STORED.values())))
    data = copy.deepcopy(stored.data)
    for key in draw(st.lists(st.sampled_from(sorted(data)), max_size=3, unique=True)):
        if draw(st.booleans()):
            del data[key]
        else:
            data[key] = draw(json_values)
    for key, value in draw(st.dictionaries(field_names | st.text(max_size=8), json_values, max_size=2)).items():
        data[key] = value
    version = draw(st.sampled_from([stored.schema_version, 1, 2]) | st.integers(-2, 5))
    return stored.type, version, data


def decode_or_declared(type_name: str, version: int, data: Any) -> None:
    try:
        event = REGISTRY.decode(type_name, version, data)
    except DECLARED:
        return
    assert type(event) is getattr(intake_events, type_name)


FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(
    type_name=st.sampled_from(REGISTRY.names()) | st.text(max_size=20),
    version=st.integers(-3, 6),
    data=st.dictionaries(field_names | st.text(max_size=12), json_values, max_size=12),
)
def test_decoding_arbitrary_json_raises_only_declared_errors(type_name: str, version: int, data: dict) -> None:
    decode_or_declared(type_name, version, data)


@FUZZ
@given(mangled_stored_data())
def test_decoding_mangled_stored_events_raises_only_declared_errors(case: tuple[str, int, dict]) -> None:
    type_name, version, data = case
    decode_or_declared(type_name, version, data)
    with contextlib.suppress(DECLARED):
        REGISTRY.upcast(type_name, version, data)


@FUZZ
@given(type_name=st.sampled_from(REGISTRY.names()), version=st.integers(1, 2), data=json_values)
def test_decoding_stored_data_that_is_not_an_object_raises_only_declared_errors(
    type_name: str, version: int, data: Any
) -> None:
    decode_or_declared(type_name, version, data)
