"""Decisions open personal fields only when they compare them: logging, reporting and the like
decide on the sealed stream as it is (no key fetched, nothing decrypted); an amendment opens it,
since "nothing changed" compares the sealed description too."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from intake_service import create_app
from shared.adapters.memory_store import InMemoryEventStore
from shared.clock import FixedClock
from shared.config import Settings
from shared.personal import PREFIX, InMemoryKeyVault
from tests.authkit import authed_client, integration_token, make_identity
from tests.unit.test_intake_api import ACTIVITY, ANSWERS, NOW, STUDENT


class CountingVault(InMemoryKeyVault):
    def __init__(self) -> None:
        super().__init__()
        self.opened: list[set[str]] = []

    def keys_for(self, subject_ids: Iterable[str]) -> dict[str, bytes]:
        wanted = set(subject_ids)
        if wanted:
            self.opened.append(wanted)
        return super().keys_for(wanted)


@pytest.fixture
def setup(tmp_path):
    clock = FixedClock(NOW)
    identity = make_identity(clock)
    vault, store = CountingVault(), InMemoryEventStore()
    app = create_app(Settings(data_dir=tmp_path, wakeup="none", ratelimit_storage="memory://"),
                     store=store, vault=vault, clock=clock, identity=identity)
    client = authed_client(app, {"Authorization": f"Bearer {integration_token(identity)[0].token}"})
    return client, vault, store


def test_logging_and_reporting_decide_without_opening_personal_data(setup) -> None:
    client, vault, store = setup
    sid = client.post("/api/v1/students", json=STUDENT).json["student_id"]
    aids = [client.post(f"/api/v1/students/{sid}/activities", json=ACTIVITY).json["activity_id"] for _ in range(2)]
    withdrawn = client.post(f"/api/v1/students/{sid}/activities/{aids[1]}/withdrawal", json={"reason": "twice"})
    # refused where the rules say so (a withdrawn activity), then taken
    refused = client.post(f"/api/v1/students/{sid}/reports", json={"answers": ANSWERS, "activity_ids": [aids[1]]})
    assert refused.status_code == 422
    report = client.post(f"/api/v1/students/{sid}/reports", json={"answers": ANSWERS, "activity_ids": [aids[0]]})
    assert (withdrawn.status_code, report.status_code) == (200, 201)
    assert vault.opened == []
    # ... and what they stored is sealed all the same
    description = next(e.data["description"] for e in store.read_all(0, 10) if e.type == "ActivityLogged")
    assert description.startswith(PREFIX)


def test_an_amendment_compares_the_sealed_description(setup) -> None:
    client, vault, store = setup
    sid = client.post("/api/v1/students", json=STUDENT).json["student_id"]
    aid = client.post(f"/api/v1/students/{sid}/activities", json=ACTIVITY).json["activity_id"]
    url = f"/api/v1/students/{sid}/activities/{aid}/amendments"
    before = store.head()
    assert client.post(url, json=ACTIVITY).status_code == 200
    assert store.head() == before  # the same details again: nothing recorded
    assert vault.opened == [{sid}]
    changed = client.post(url, json={**ACTIVITY, "description": "Another text."})
    assert changed.status_code == 200
    assert [e.type for e in store.read_stream(f"student-{sid}")][-1] == "ActivityAmended"
