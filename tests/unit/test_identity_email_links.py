"""Students' one-time e-mail sign-in links: signed, expiring, single use, bound to the account."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import timedelta

import pytest

from shared.clock import FixedClock
from shared.identity.accounts import AccountService
from shared.identity.crypto import derive_key, token_hash
from shared.identity.email_links import EmailLinkService
from shared.identity.errors import AccountDisabled, LinkAlreadyUsed, LinkExpired, LinkInvalid, SignInFailed
from shared.identity.models import Account, Role, RoleGrant
from shared.identity.sql_store import SqlIdentityStore, used_tokens
from shared.identity.store import IdentityStore, InMemoryIdentityStore
from tests.factories import at_once

KEY = derive_key("s" * 40, "email-link")


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path) -> IdentityStore:  # type: ignore[no-untyped-def]
    if request.param == "memory":
        return InMemoryIdentityStore()
    sql = SqlIdentityStore(f"sqlite:///{tmp_path / 'identity.db'}")
    sql.create_schema()
    return sql


@pytest.fixture
def accounts(store: IdentityStore, clock: FixedClock) -> AccountService:
    return AccountService(store, clock)


@pytest.fixture
def links(store: IdentityStore, clock: FixedClock) -> EmailLinkService:
    return EmailLinkService(store, KEY, clock, ttl=timedelta(minutes=15))


@pytest.fixture
def student(accounts: AccountService) -> Account:
    return accounts.create_account("Ada", "ada@student.lu.se", student_id=str(uuid.uuid4()))


def test_a_link_signs_its_student_in_once(links: EmailLinkService, student: Account) -> None:
    issued = links.request_link("ADA@student.lu.se")
    assert issued is not None
    assert issued.token not in repr(issued)
    assert links.redeem(issued.token).id == student.id
    with pytest.raises(LinkAlreadyUsed):
        links.redeem(issued.token)


def test_a_link_expires_after_its_ttl(links: EmailLinkService, student: Account, clock: FixedClock) -> None:
    issued = links.issue(student)
    assert issued.expires_at == clock.now() + timedelta(minutes=15)
    clock.advance(timedelta(minutes=14, seconds=59))
    fresh = links.issue(student)
    assert links.redeem(fresh.token).id == student.id
    clock.advance(timedelta(seconds=1))
    with pytest.raises(LinkExpired):
        links.redeem(issued.token)


def test_a_tampered_link_is_refused(links: EmailLinkService, student: Account, accounts: AccountService) -> None:
    other = accounts.create_account("Bob", "bob@student.lu.se", student_id=str(uuid.uuid4()))
    token = links.issue(student).token
    version, payload, mac = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["a"] = other.id
    forged = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    for bad in [f"{version}.{forged}.{mac}", token[:-2] + "AA", "v2" + token[2:], "garbage", "", "a.b.c", token + "."]:
        with pytest.raises(LinkInvalid):
            links.redeem(bad)


def test_a_used_link_cannot_be_replayed_in_another_spelling(links: EmailLinkService, student: Account) -> None:
    """base64 forgives stray characters and spare low bits; a variant must not count as a new link."""
    token = links.issue(student).token
    links.redeem(token)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(token[-1])
    same_bits = [token[:-1] + alphabet[j] for j in range(64) if j != last and j >> 2 == last >> 2]
    version, payload, mac = token.split(".")
    variants = [
        *same_bits,
        token + "!!",
        token + "!!!!",
        token + "\n",
        f"{version}.{payload}=.{mac}",
        f"{version}.{payload}.{mac}==",
    ]
    for variant in variants:
        with pytest.raises(LinkInvalid):
            links.redeem(variant)


def test_a_link_signed_with_another_key_is_refused(
    store: IdentityStore, clock: FixedClock, links: EmailLinkService, student: Account
) -> None:
    foreign = EmailLinkService(store, derive_key("t" * 40, "email-link"), clock)
    with pytest.raises(LinkInvalid):
        links.redeem(foreign.issue(student).token)


def test_a_link_stops_working_when_the_email_changes(
    store: IdentityStore, clock: FixedClock, links: EmailLinkService
) -> None:
    old = Account(str(uuid.uuid4()), "Ada", "old@student.lu.se", clock.now(), student_id=str(uuid.uuid4()))
    token = links.issue(old).token
    store.add_account(Account(old.id, "Ada", "new@student.lu.se", clock.now(), student_id=old.student_id))
    with pytest.raises(LinkInvalid):
        links.redeem(token)


def test_a_disabled_account_cannot_use_its_link(
    links: EmailLinkService, student: Account, accounts: AccountService
) -> None:
    token = links.issue(student).token
    accounts.disable_account(student.id)
    with pytest.raises(AccountDisabled):
        links.redeem(token)
    assert links.request_link("ada@student.lu.se") is None


def test_links_are_only_for_students(links: EmailLinkService, accounts: AccountService) -> None:
    accounts.create_account("Grace", "grace@lu.se", grants=[RoleGrant(Role.COORDINATOR, "FYS")])
    accounts.create_account("Stu", "stu@lu.se", grants=[RoleGrant(Role.STUDENT, "FYS")])
    assert links.request_link("grace@lu.se") is None
    assert links.request_link("nobody@lu.se") is None
    assert links.request_link("stu@lu.se") is not None


def test_every_refusal_is_a_sign_in_failure(links: EmailLinkService) -> None:
    with pytest.raises(SignInFailed) as refused:
        links.redeem("v1.x.y")
    assert refused.value.status == 401


def test_the_link_is_never_stored_in_clear(tmp_path, clock: FixedClock) -> None:  # type: ignore[no-untyped-def]
    store = SqlIdentityStore(f"sqlite:///{tmp_path / 'identity.db'}")
    store.create_schema()
    links = EmailLinkService(store, KEY, clock)
    account = AccountService(store, clock).create_account("Ada", "ada@lu.se", student_id=str(uuid.uuid4()))
    issued = links.issue(account)
    links.redeem(issued.token)
    with store.engine.connect() as conn:
        rows = conn.execute(used_tokens.select()).all()
    assert [r.token_hash for r in rows] == [token_hash(issued.token)]
    store.dispose()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert issued.token.encode() not in raw
    assert issued.token.split(".")[2].encode() not in raw


def test_the_key_must_be_long_enough(store: IdentityStore, clock: FixedClock) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        EmailLinkService(store, b"short", clock)


def test_concurrent_clicks_on_one_link_sign_in_once(links: EmailLinkService, student: Account) -> None:
    token = links.issue(student).token

    def click() -> str:
        try:
            links.redeem(token)
            return "signed in"
        except LinkAlreadyUsed:
            return "already used"

    outcomes = at_once(6, click)
    assert sorted(outcomes) == ["already used"] * 5 + ["signed in"]


# -- issue 18.1: staff never sign in by link; a newer link used kills the older ones ---------------
def forged_link(account_id: str, clock: FixedClock, email: str | None, key: bytes = KEY) -> str:
    """What an attacker holding the link key builds by hand: the payload of a real link."""
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    expires = int((clock.now() + timedelta(minutes=10)).timestamp())
    body = {"a": account_id, "n": b64(b"0" * 16), "x": expires,
            "i": int(clock.now().timestamp() * 1_000_000)}
    payload = b64(json.dumps(body, separators=(",", ":"), sort_keys=True).encode())
    mac = hmac.new(key, f"v1.{payload}.{email or ''}".encode(), hashlib.sha256).digest()
    return f"v1.{payload}.{b64(mac)}"


@pytest.mark.parametrize(
    "grants",
    [
        [RoleGrant(Role.ASSESSOR, "SOCSW")],
        [RoleGrant(Role.COORDINATOR, "SOCSW"), RoleGrant(Role.STUDENT, "MED")],
        [RoleGrant(Role.ADMINISTRATOR, None)],
    ],
    ids=["assessor", "coordinator-and-student", "administrator"],
)
def test_a_correctly_signed_link_never_signs_in_staff(
    links: EmailLinkService, accounts: AccountService, clock: FixedClock, grants: list[RoleGrant]
) -> None:
    staff = accounts.create_account("Assessor Exempel", "assessor@lu.se", grants=grants)
    with pytest.raises(LinkInvalid):
        links.redeem(links.issue(staff).token)
    with pytest.raises(LinkInvalid):
        links.redeem(forged_link(staff.id, clock, staff.email))
    assert links.request_link("assessor@lu.se") is None


def test_an_account_with_a_staff_credential_never_signs_in_by_link(
    links: EmailLinkService, accounts: AccountService, store: IdentityStore, clock: FixedClock
) -> None:
    # A student who also holds a password (or a TOTP secret) signs in the staff way only.
    holder = accounts.create_account("Pia Exempel", "pia@lu.se", student_id=str(uuid.uuid4()),
                                     grants=[RoleGrant(Role.STUDENT, "SOCSW")])
    token = links.issue(holder).token
    store.set_password_hash(holder.id, "$argon2id$not-a-real-hash", clock.now())
    with pytest.raises(LinkInvalid):
        links.redeem(token)
    assert links.request_link("pia@lu.se") is None


def test_using_a_newer_link_kills_every_older_unused_one(
    links: EmailLinkService, student: Account, clock: FixedClock
) -> None:
    first = links.issue(student).token
    clock.advance(timedelta(seconds=30))
    second = links.issue(student).token
    clock.advance(timedelta(seconds=30))
    third = links.issue(student).token
    assert links.redeem(second).id == student.id
    with pytest.raises(LinkInvalid):
        links.redeem(first)
    # A link issued after the one used still works, once.
    assert links.redeem(third).id == student.id
    with pytest.raises(LinkInvalid):
        links.redeem(second)
