"""A display name, however long and whatever it holds, is one phrase of one To: address (issue 18.3).

The messages are written as smtplib writes them (`BytesGenerator` with the message's own policy,
CRLF) and parsed back from the bytes, by the modern parser and by the compat32 `getaddresses`
that older mail software still resembles."""

from __future__ import annotations

import io
from email import message_from_bytes, policy
from email.generator import BytesGenerator
from email.header import decode_header, make_header
from email.utils import getaddresses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.mail import Mail, build_message, sign_in_link_mail

SENDER = "CIM <cim-noreply@example.org>"
HOSTILE_NAMES = [
    "Hedda Longname Exempelsson, Mallory Attacker <mallory@attacker.example>, Trailing",
    'A "quoted" name, with <x@attacker.example> and more text to make it very long indeed, ok',
    "Åsa Öberg-Ännesdotter, Mallory <mallory@attacker.example>, and a long tail of text here",
    '"' * 120 + ", <m@attacker.example>",
    "Name;group: m@attacker.example; (comment) [x] \\ end, " * 4,
    "Ünïcödé " * 30 + ", Mallory <mallory@attacker.example>",
    "x" * 200,
    "Tova Exempel",
]


def wire_bytes(name: str, email: str = "hedda@example.org") -> bytes:
    mail = sign_in_link_mail(to_email=email, to_name=name, url="http://x/auth/link/t", minutes=15,
                             locale="en", key="k")
    buffer = io.BytesIO()
    BytesGenerator(buffer).flatten(build_message(mail, SENDER), linesep="\r\n")  # as smtplib does
    return buffer.getvalue()


def the_to_header(raw: bytes) -> str:
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ")
    (to,) = [line for line in unfolded.split("\r\n") if line.lower().startswith("to:")]
    return to[3:].strip()


def assert_one_recipient(raw: bytes, name: str, email: str = "hedda@example.org") -> None:
    parsed = message_from_bytes(raw, policy=policy.default)
    addresses = parsed["To"].addresses
    assert [a.addr_spec for a in addresses] == [email], parsed["To"]
    assert len(parsed.get_all("To") or []) == 1
    old_style = getaddresses(message_from_bytes(raw, policy=policy.compat32).get_all("To"))
    assert [addr for _name, addr in old_style] == [email], old_style
    assert all(len(line) <= 78 for line in raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n"))
    # An RFC 2047 decoder gives back the whole name, in one phrase before the address.
    header = the_to_header(raw)
    if not name.split():
        assert header == email
        return
    phrase, _, rest = header.rpartition(" <")
    assert rest == f"{email}>"
    assert str(make_header(decode_header(phrase))) == " ".join(name.split())[:200]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_long_hostile_display_name_is_one_recipient(name: str) -> None:
    assert_one_recipient(wire_bytes(name), name)


def test_the_audit_finding_no_longer_reaches_mallory() -> None:
    raw = wire_bytes(HOSTILE_NAMES[0])
    assert b"mallory@attacker.example" not in raw.split(b"\r\n\r\n", 1)[0]  # encoded, not an address
    assert "mallory@attacker.example" not in message_from_bytes(raw, policy=policy.default)["To"].addresses[0].addr_spec


def test_a_plain_name_stays_readable() -> None:
    assert the_to_header(wire_bytes("Tova Exempel")) == "Tova Exempel <hedda@example.org>"


def test_the_encoded_word_and_line_break_filter_still_holds() -> None:
    for name in ("Eve\r\nBcc: victim@example.org", "=?utf-8?q?Eve=0D=0ABcc:_victim@example.org?=" * 3):
        raw = wire_bytes(name)
        parsed = message_from_bytes(raw, policy=policy.default)
        assert parsed.get("Bcc") is None
        assert [a.addr_spec for a in parsed["To"].addresses] == ["hedda@example.org"]
        assert "\n" not in parsed["To"].addresses[0].display_name


def test_the_sender_name_is_folded_the_same_way() -> None:
    mail = Mail("a@example.org", "A", "Subject", "text", "<p>html</p>", "k")
    message = build_message(mail, '"Long, Sender <x@attacker.example>, ' + "y" * 80 + '" <noreply@example.org>')
    parsed = message_from_bytes(message.as_bytes(), policy=policy.default)
    assert [a.addr_spec for a in parsed["From"].addresses] == ["noreply@example.org"]


@settings(max_examples=300, deadline=None)
@given(name=st.text(max_size=200))
def test_any_display_name_is_one_recipient(name: str) -> None:
    raw = wire_bytes(name)
    if _printable(name):
        assert_one_recipient(raw, name.replace("=?", "= ?"))
    else:
        assert [a.addr_spec for a in message_from_bytes(raw, policy=policy.default)["To"].addresses] == [
            "hedda@example.org"]


def _printable(name: str) -> bool:
    """Names without control characters or lone surrogates, for which the decoded phrase is checked
    (others are cleaned before they reach the header; that they stay one recipient is still checked)."""
    return all(32 <= ord(c) != 127 and not 0xD800 <= ord(c) <= 0xDFFF for c in name)
