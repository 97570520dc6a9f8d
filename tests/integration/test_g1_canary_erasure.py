"""Erasure proven by canaries: seed students with unique synthetic canary tokens in their
name, e-mail, activity description, report answers, upload file name and PDF (and, for every
tenth, review comments and a decision summary written by staff), through the real
intake app (JSON API, the e-mail sign-in link path with a real SMTP server, Redis sessions, rate
limits and Celery wake-ups in Redis) and the assessment projection; erase 100 with the operator
command (`flask students erase`: intake and the identity account in one); then search the bytes
of everything we keep (bar G1; the key is in tests/README.md):

- both databases and the identity store: on SQLite the files themselves (main file, -wal, -shm,
  so free pages and old WAL frames count); on PostgreSQL every table dumped with COPY TO STDOUT
  (the logical content; what PostgreSQL keeps in dead tuples and its WAL until VACUUM and
  checkpoints is its own storage, outside what this test reads);
- the upload directory and the whole data directory;
- the application's log file (everything our loggers wrote during the run);
- Redis: every key and value (typed reads, and DUMP).

The erased have 0 hits anywhere; every other student's name and e-mail are still found in the
databases; the projections still rebuild from the log (equal to the live read models) and replay.

Mail: the aiosmtpd server in this test stands for the recipient's mail system. What it received
is the student's mailbox, not ours, and is not searched. The product keeps no outgoing spool:
`shared.mail.Mailer` hands each message to SMTP synchronously and keeps nothing (the data
directory scan below would find a spool if one appeared).
"""

from __future__ import annotations

import io
import logging
import os
import random
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pypdf import PdfWriter

from assessment_service import projections, reviews
from assessment_service import services as assessment_services
from assessment_service.bootstrap import build_context
from intake_service import create_app
from shared.adapters.feed import StoreEventFeed
from shared.adapters.sql import compact_sqlite, make_engine
from shared.application import RequestContext
from shared.config import Settings
from shared.identity.models import Role, RoleGrant
from shared.projection import ProjectionRunner

STUDENTS = int(os.environ.get("CIM_G1_STUDENTS", "500"))
ERASED = int(os.environ.get("CIM_G1_ERASED", "100"))
TOKEN = re.compile(rb"cnry[0-9a-f]{16}")
IDENTITY_KEY = "g1-identity-key-0123456789abcdef-0123456789abcdef"
ANSWER_CODES = ("learning", "profession", "perspective")


def token() -> str:
    return "cnry" + secrets.token_hex(8)


def pdf_with_title(title: str) -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    writer.add_metadata({"/Title": title, "/Author": title})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


class Mailbox:
    """The recipients' side of SMTP: what the mail server accepted."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.refuse_once: set[str] = set()

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address in self.refuse_once:  # an unknown-mailbox refusal: the app's error path logs
            self.refuse_once.discard(address)
            return "550 5.1.1 mailbox unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(bytes(envelope.content))
        return "250 OK"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_url() -> str:
    url = os.environ.get("CIM_TEST_REDIS_URL")
    if not url:
        pytest.skip("CIM_TEST_REDIS_URL is not set (scripts/test.sh starts redis-server)")
    return url.rsplit("/", 1)[0] + "/7" if re.search(r"/\d+$", url) else url.rstrip("/") + "/7"


def redis_bytes(client: Any) -> bytes:
    """Every key and value, read by type (values as stored) and as DUMP."""
    parts: list[bytes] = []
    for key in client.scan_iter(count=1000):
        parts.append(key)
        kind = client.type(key).decode()
        if kind == "string":
            parts.append(client.get(key) or b"")
        elif kind == "list":
            parts.extend(client.lrange(key, 0, -1))
        elif kind == "hash":
            for field, value in client.hgetall(key).items():
                parts += [field, value]
        elif kind == "set":
            parts.extend(client.smembers(key))
        elif kind == "zset":
            parts.extend(client.zrange(key, 0, -1))
        elif kind == "stream":
            for _, fields in client.xrange(key):
                for field, value in fields.items():
                    parts += [field, value]
        parts.append(client.dump(key) or b"")
    return b"\n".join(parts)


def pg_dump(url: str) -> bytes:
    """Every row of every table of a database, as COPY TO STDOUT text."""
    import psycopg

    plain = url.replace("postgresql+psycopg://", "postgresql://")
    out = bytearray()
    with psycopg.connect(plain, autocommit=True) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")]
        for table in tables:
            with conn.cursor().copy(f'COPY "{table}" TO STDOUT') as copy:
                for chunk in copy:
                    out += bytes(chunk)
    return bytes(out)


def files_bytes(root: Path) -> bytes:
    return b"\n".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def tokens_in(blob: bytes) -> set[str]:
    return {m.decode() for m in TOKEN.findall(blob)}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_urls(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    if request.param == "sqlite":
        data = tmp_path / "data"
        return {"intake": f"sqlite:///{data / 'intake.db'}", "assessment": f"sqlite:///{data / 'assessment.db'}",
                "identity": f"sqlite:///{data / 'identity.db'}"}
    make: Callable[[], str] = request.getfixturevalue("pg_database")
    return {"intake": make(), "assessment": make(), "identity": make()}


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_erased_canaries_are_found_nowhere_and_the_others_still_are(
    database_urls: dict[str, str], tmp_path: Path
) -> None:
    import redis
    from aiosmtpd.controller import Controller

    started = time.monotonic()
    sqlite = database_urls["intake"].startswith("sqlite")
    data_dir = tmp_path / "data"
    log_file = tmp_path / "logs" / "app.log"
    log_file.parent.mkdir(parents=True)
    r_url = redis_url()
    r = redis.Redis.from_url(r_url)
    r.flushdb()

    mailbox = Mailbox()
    smtp_port = free_port()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=smtp_port)
    smtp.start()

    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    # The SMTP server's own logger belongs to the recipient's side (it logs what it receives).
    handler.addFilter(lambda record: not record.name.startswith("mail.log"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        settings = Settings(
            data_dir=data_dir,
            intake_db_url=database_urls["intake"],
            assessment_db_url=database_urls["assessment"],
            identity_db_url=database_urls["identity"],
            identity_key=IDENTITY_KEY,
            redis_url=r_url,
            wakeup="celery",
            ratelimit_storage="redis",
            ratelimit_post="1000000 per minute",
            ratelimit_signin="1000000 per minute",
            smtp_host="127.0.0.1",
            smtp_port=smtp_port,
            intake_url="http://127.0.0.1:8000",
        )
        app = create_app(settings)
        app.config["WTF_CSRF_ENABLED"] = False  # forms are posted by this test, not a browser
        services = app.extensions["cim.intake"]
        identity = app.extensions["cim.identity"]
        api_token = identity.api_tokens.create("g1 seeding", ["intake:register", "intake:write", "intake:read"])
        api = app.test_client()
        auth = {"Authorization": f"Bearer {api_token.token}"}
        from shared.outbox import Outbox, smtp_sender

        outbox = Outbox.from_url(settings.identity_db_url, settings.identity_secret)

        def deliver() -> None:
            """What the workers' delivery task does (no worker runs here): mail goes via the outbox."""
            outbox.deliver_due(smtp_sender(app.extensions["cim.mailer"]))

        # -- seed ------------------------------------------------------------------------------
        people: list[dict[str, Any]] = []
        for n in range(STUDENTS):
            p = {k: token() for k in ("name", "email", "description", "answer", "filename")}
            name, email = f"Synthetic {p['name']}", f"{p['email']}@example.org"
            response = api.post("/api/v1/students", headers=auth, json={
                "name": name, "email": email, "university_id": f"g1-{n}",
                "department": "SOCSW", "programme": "SSASK", "expected_end_term": "VT2028"})
            assert response.status_code == 201, response.json
            sid = response.json["student_id"]
            activity = api.post(f"/api/v1/students/{sid}/activities", headers=auth, json={
                "kind": "exchange", "title": "Exchange term", "organiser": "A university", "setting": "abroad",
                "country_code": "DE", "start_date": "2026-01-10", "end_date": "2026-03-01", "hours": 40,
                "description": f"About {p['description']}"})
            assert activity.status_code == 201, activity.json
            attachment_id = None
            if n % 5 == 0:
                upload = api.post(f"/api/v1/students/{sid}/attachments", headers=auth,
                                  data={"file": (io.BytesIO(pdf_with_title(p["name"])), f"{p['filename']}.pdf")},
                                  content_type="multipart/form-data")
                assert upload.status_code == 201, upload.json
                attachment_id = upload.json["attachment_id"]
            report = api.post(f"/api/v1/students/{sid}/reports", headers=auth, json={
                "answers": {code: f"{code} {p['answer']}" for code in ANSWER_CODES},
                "activity_ids": [activity.json["activity_id"]], "attachment_id": attachment_id})
            assert report.status_code == 201, report.json
            if identity.accounts.account_for_student(sid) is None:
                identity.accounts.create_account(name, email, student_id=sid,
                                                 grants=[RoleGrant(Role.STUDENT, "SOCSW")])
            # The student signs in by e-mail link: the app mails it through SMTP; the link from
            # the received mail is redeemed, which makes a session in Redis.
            browser = app.test_client()
            if n % 10 == 0:  # the first mail to every tenth student is refused, then asked again
                mailbox.refuse_once.add(email)
                assert browser.post("/auth/link", data={"link-email": email}).status_code == 303
                deliver()  # the server refuses it
                deadline = time.monotonic() + 10
                while email in mailbox.refuse_once and time.monotonic() < deadline:
                    time.sleep(0.01)
                assert email not in mailbox.refuse_once
            before = len(mailbox.messages)
            sent = browser.post("/auth/link", data={"link-email": email})
            assert sent.status_code == 303, sent.get_data(as_text=True)[:500]
            deliver()
            deadline = time.monotonic() + 10
            while not any(email.encode() in m for m in mailbox.messages[before:]) and time.monotonic() < deadline:
                time.sleep(0.01)
            # The outbox may also deliver an earlier, refused mail as it is retried: take the
            # newest mail to this student.
            mine = [m for m in mailbox.messages[before:] if email.encode() in m]
            assert mine, "the sign-in mail did not arrive"
            link = re.search(rb"/auth/link/([A-Za-z0-9_.=-]+)", mine[-1].replace(b"=\r\n", b""))
            assert link is not None
            signed_in = browser.post(f"/auth/link/{link.group(1).decode()}", data={})
            assert signed_in.status_code == 303, signed_in.get_data(as_text=True)[:500]
            assert browser.get(f"/students/{sid}/my-data").status_code == 200
            people.append({"sid": sid, "p": p, "uploaded": attachment_id is not None,
                           "report_id": report.json["report_id"], "activity_id": activity.json["activity_id"],
                           "tokens": set(p.values()) - ({p["filename"]} if attachment_id is None else set())})

        feed = StoreEventFeed(services.store, opener=services.open_events)
        live = ProjectionRunner(make_engine(database_urls["assessment"], immediate=True), feed, projections.ALL,
                                batch_size=2000)
        live.create_schema()
        live.catch_up()

        # -- reviews: comments and summaries written about every tenth student -------------------
        ctx = build_context(settings, feed=feed)
        ctx.runner.catch_up()
        staff = {role: identity.accounts.create_account(f"G1 {role}", f"g1-{role}@example.org", grants=[
            RoleGrant(Role.COORDINATOR if role == "coordinator" else Role.ASSESSOR, "SOCSW")])
            for role in ("coordinator", "first", "second")}
        by = {role: identity.accounts.principal(account.id) for role, account in staff.items()}
        reviewed = people[::10]
        for person in reviewed:
            rid, req = person["report_id"], RequestContext(actor="g1", correlation_id=f"g1-{person['sid']}")
            person["comment"], person["summary"] = token(), token()
            for role in ("first", "second"):
                assessment_services.assign_assessor(ctx, identity, by["coordinator"], rid, staff[role].id, req)
                assessment_services.submit_review(ctx, by[role], rid, reviews.SubmitReview(
                    staff[role].id, dict.fromkeys(reviews.CRITERIA, "met"),
                    {"report_complete": f"comment {person['comment']}"}, "revise"), req)
            summary = f"summary {person['summary']}"
            assessment_services.decide_report(ctx, by["coordinator"], rid, "revise", summary, req)
            person["tokens"] |= {person["comment"], person["summary"]}
            # ... and they resubmit: round 2's answers are copied per round on the assessment side.
            person["revised"] = token()
            requested = {rid: {"round": 1, "state": "revision_requested"}}
            services.report_steps = lambda _sid, requested=requested: requested  # as the intake's view would say
            resubmitted = api.post(f"/api/v1/students/{person['sid']}/reports/{rid}/resubmission", headers=auth, json={
                "answers": {code: f"{code} {person['revised']}" for code in ANSWER_CODES},
                "activity_ids": [person["activity_id"]]})
            assert resubmitted.status_code == 201, resubmitted.json
            person["tokens"].add(person["revised"])
        seeded = time.monotonic() - started

        # -- erase -----------------------------------------------------------------------------
        erased = random.Random(4).sample(people, ERASED)
        erased_ids = {p["sid"] for p in erased}
        cli = app.test_cli_runner()
        for person in erased:
            result = cli.invoke(args=["students", "erase", person["sid"], "--operator", "g1-test"])
            assert result.exit_code == 0, result.output
            assert "no account" not in result.output
        live.catch_up()
        assert set(live.checkpoints().values()) == {services.store.head()}
        # The erasures destroyed the students' keys of the assessment service (its `students`
        # read model does, with its checkpoint): their review comments and summaries read as null,
        # everyone else's still read.
        for person in reviewed:
            record = assessment_services.review_record(ctx, by["coordinator"], person["report_id"])
            round_1 = record["rounds"][0]
            comments = {str(r["comments"]) for r in round_1["reviews"]}
            if person["sid"] in erased_ids:
                assert comments == {"None"}
                assert round_1["decision"]["summary"] is None
            else:
                assert comments == {str({"report_complete": f"comment {person['comment']}"})}
                assert round_1["decision"]["summary"] == f"summary {person['summary']}"
        assert {p["sid"] for p in reviewed} & erased_ids, "no reviewed student was erased: proves nothing"
        ctx.dispose()
        if sqlite:
            # The assessment read model's SQLite file: checkpoint its WAL after the erasures were
            # projected (see the README: the retention task does this daily for every file).
            compact_sqlite(live.engine)

        # -- search ----------------------------------------------------------------------------
        dbs = files_bytes(data_dir) if sqlite else b"\n".join(pg_dump(u) for u in database_urls.values())
        everything = b"\n".join([
            dbs,
            files_bytes(data_dir),
            files_bytes(Path(settings.upload_dir or data_dir / "uploads")),
            log_file.read_bytes(),
            redis_bytes(r),
        ])
        found_anywhere = tokens_in(everything)
        found_in_dbs = tokens_in(dbs)
        erased_tokens = set().union(*(p["tokens"] for p in erased))
        kept = [p for p in people if p["sid"] not in erased_ids]
        leaked = erased_tokens & found_anywhere
        assert not leaked, f"{len(leaked)} canaries of erased students still stored"
        found_in_uploads = tokens_in(files_bytes(Path(settings.upload_dir or data_dir / "uploads")))
        for person in kept:
            p = person["p"]
            # Copied in plain text: name and e-mail (identity store, read models), the activity
            # description and the answers (read models). The file name lives only sealed in the
            # intake log (checked through the export); the name is also inside the PDF.
            missing = {p[k] for k in ("name", "email", "description", "answer")} - found_in_dbs
            if "revised" in person:  # round 2's answers, in the reports and report_rounds read models
                missing |= {person["revised"]} - found_in_dbs
            assert not missing, f"student {person['sid']} lost data: {len(missing)} canaries missing"
            if person["uploaded"]:
                assert p["name"] in found_in_uploads
                assert p["filename"] in str(services.export(person["sid"]))
        assert log_file.stat().st_size > 0, "nothing was logged: the log check would prove nothing"
        # One accepted sign-in mail per student, plus any refused first mail (every tenth student)
        # that the outbox retried and the server then accepted.
        assert STUDENTS <= len(mailbox.messages) <= STUDENTS + (STUDENTS + 9) // 10

        # -- still replays -----------------------------------------------------------------------
        digest = live.digest()
        rebuilt = ProjectionRunner(make_engine(f"sqlite:///{tmp_path / 'rebuilt.db'}", immediate=True), feed,
                                   projections.ALL, batch_size=2000)
        rebuilt.create_schema()
        rebuilt.rebuild()
        assert rebuilt.digest() == digest
        live.rebuild()
        assert live.digest() == digest
        with sa.create_engine(f"sqlite:///{tmp_path / 'rebuilt.db'}").connect() as conn:
            names = dict(conn.exec_driver_sql("SELECT student_id, name FROM students").all())
        assert all(names[sid] is None for sid in erased_ids)
        assert all(names[p["sid"]] for p in kept)
        print(f"G1 {STUDENTS} students seeded in {seeded:.0f} s, {ERASED} erased; "
              f"{len(found_anywhere)} canaries found, 0 of the erased; total {time.monotonic() - started:.0f} s")
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()
        smtp.stop()
