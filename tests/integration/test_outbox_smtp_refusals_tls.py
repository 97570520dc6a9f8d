"""The outbox against real SMTP servers that refuse, and over TLS (issue 13).

Refusals: an aiosmtpd server whose RCPT/DATA handlers answer 550, 553, 554 or 451. A 5xx reply to
the message fails the row at once (one attempt, no retry, the server's answer on `last_error` with
the address masked); a 4xx or a dropped connection backs off and the next attempt goes out.

TLS: aiosmtpd servers with STARTTLS and with implicit TLS, on a certificate for `localhost` signed
by a throwaway CA made here (cryptography). With the CA file (CIM_SMTP_CA_FILE) and the right host
name the mail goes out, with AUTH over the encrypted connection; an untrusted certificate, a wrong
host name, or a server that does not offer STARTTLS fail the send before anything is sent in clear,
and the outbox retries (the row stays pending with the TLS error on it).

Servers in this process, on free loopback ports: no external service needed."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from shared.clock import FixedClock, SystemClock
from shared.config import Settings
from shared.mail import Mailer
from shared.mail_templates import TEMPLATES
from shared.outbox import BACKOFF, FAILED, PENDING, SENT, Message, Outbox, smtp_sender

#: The implicit-TLS server encrypts the whole session, which aiosmtpd's check does not see.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")

SECRET = "outbox-refusals-test-secret-0123456789abcdef"
USER, PASSWORD = "cim-relay", "relay-password-for-tests"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Handler:
    """Accepts mail, but answers `rcpt_replies[local part]` to RCPT TO and `data_reply` to DATA."""

    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_reply: str | None = None
    received: list[bytes] = field(default_factory=list)
    rcpts: list[str] = field(default_factory=list)
    tls_seen: list[bool] = field(default_factory=list)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        self.rcpts.append(address)
        reply = self.rcpt_replies.get(address.partition("@")[0])
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_reply is not None:
            return self.data_reply
        self.received.append(envelope.content)
        # STARTTLS sets session.ssl; implicit TLS shows on the transport
        self.tls_seen.append(session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None)
        return "250 Message accepted for delivery"


def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        USER.encode(), PASSWORD.encode())
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def box(tmp_path: Path) -> Outbox:
    made = Outbox.from_url(f"sqlite:///{tmp_path / 'identity.db'}", SECRET, clock=FixedClock(SystemClock().now()))
    made.create_schema()
    return made


def enqueue(box: Outbox, local: str, key: str | None = None) -> str:
    key = key or f"event:{local}"
    assert box.enqueue(Message(key=key, template="report_received", locale="en",
                               to_address=f"{local}@refusing.example", to_name="Sam Exempel",
                               context=dict(TEMPLATES["report_received"].sample), subject_id=f"s-{local}"))
    return key


@pytest.fixture
def server() -> Iterator[tuple[Handler, int]]:
    handler = Handler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


# -- refusals --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("where", "reply", "code"), [
    ("rcpt", "550 5.1.1 <gone@refusing.example>: Recipient address rejected: User unknown", "550"),
    ("rcpt", "553 5.1.3 Bad recipient address syntax", "553"),
    ("data", "554 5.7.1 Message rejected as spam", "554"),
])
def test_a_5xx_reply_fails_the_mail_at_once_with_the_servers_answer(
    box: Outbox, server: tuple[Handler, int], where: str, reply: str, code: str
) -> None:
    handler, port = server
    if where == "rcpt":
        handler.rcpt_replies["gone"] = reply
    else:
        handler.data_reply = reply
    key = enqueue(box, "gone")
    result = box.deliver_due(smtp_sender(Mailer("127.0.0.1", port, "CIM <cim@example.org>", timeout=5)))
    assert (result.sent, result.retried, result.failed) == (0, 0, 1)
    row = box.by_key(key)
    assert row is not None
    assert (row.status, row.attempts) == (FAILED, 1)
    assert row.last_error is not None
    assert f"(SMTP {code})" in row.last_error
    assert reply.split(" ", 2)[2].split(":")[-1].strip() in row.last_error  # the server's own words
    assert "gone@refusing.example" not in row.last_error  # the address masked
    if where == "rcpt" and code == "550":
        assert "g…@refusing.example" in row.last_error
    # Not retried: later runs leave it alone, the server hears nothing more.
    asked = len(handler.rcpts)
    assert isinstance(box.clock, FixedClock)
    box.clock.advance(BACKOFF[-1] * 2)
    again = box.deliver_due(smtp_sender(Mailer("127.0.0.1", port, "CIM <cim@example.org>", timeout=5)))
    assert again.sent == again.retried == again.failed == 0
    assert len(handler.rcpts) == asked
    assert handler.received == []


def test_a_4xx_reply_is_retried_with_backoff_and_then_sent(box: Outbox, server: tuple[Handler, int]) -> None:
    handler, port = server
    handler.rcpt_replies["busy"] = "451 4.7.1 Greylisted, try again later"
    key = enqueue(box, "busy")
    send = smtp_sender(Mailer("127.0.0.1", port, "CIM <cim@example.org>", timeout=5))
    assert box.deliver_due(send).retried == 1
    row = box.by_key(key)
    assert row is not None
    assert (row.status, row.attempts) == (PENDING, 1)
    assert row.last_error is not None
    assert "(SMTP 451)" in row.last_error
    assert "Greylisted" in row.last_error
    assert row.next_attempt_at == box.clock.now() + BACKOFF[0]
    assert box.deliver_due(send).retried == 0  # not due yet
    del handler.rcpt_replies["busy"]  # the greylisting is over
    assert isinstance(box.clock, FixedClock)
    box.clock.advance(BACKOFF[0])
    assert box.deliver_due(send).sent == 1
    row = box.by_key(key)
    assert row is not None
    assert row.status == SENT
    assert len(handler.received) == 1


def test_a_refused_connection_is_retried_not_failed(box: Outbox) -> None:
    key = enqueue(box, "nobody-listens")
    result = box.deliver_due(smtp_sender(Mailer("127.0.0.1", free_port(), "CIM <cim@example.org>", timeout=2)))
    assert result.retried == 1
    row = box.by_key(key)
    assert row is not None
    assert (row.status, row.attempts) == (PENDING, 1)
    assert row.last_error == "ConnectionRefusedError"


# -- TLS -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Certs:
    ca_file: Path
    server: ssl.SSLContext


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """A throwaway CA and a server certificate for DNS:localhost only (not the IP)."""
    directory = tmp_path_factory.mktemp("certs")
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("CIM test CA")).issuer_name(_name("CIM test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name("localhost")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (directory / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "server.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(directory / "server.pem", directory / "server.key")
    assert ipaddress.ip_address("127.0.0.1")  # the certificate deliberately does not name it
    return Certs(ca_file, server)


@pytest.fixture
def starttls_server(certs: Certs) -> Iterator[tuple[Handler, int]]:
    handler = Handler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, tls_context=certs.server,
                            require_starttls=True, authenticator=authenticator, auth_require_tls=True,
                            auth_required=True)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@pytest.fixture
def tls_server(certs: Certs) -> Iterator[tuple[Handler, int]]:
    handler = Handler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, ssl_context=certs.server,
                            server_hostname="localhost", authenticator=authenticator, auth_required=True,
                            auth_require_tls=False)  # implicit TLS: the whole session is encrypted
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def mailer_from_env(port: int, security: str, *, host: str = "localhost", ca_file: Path | None = None,
                    password: str = PASSWORD) -> Mailer:
    """A Mailer built the way the apps build it: from CIM_SMTP_* variables."""
    env = {"CIM_ENV": "test", "CIM_SECRET_KEY": "k" * 40, "CIM_VAULT_KEY": "v" * 40, "CIM_IDENTITY_KEY": "i" * 40,
           "CIM_SMTP_HOST": host, "CIM_SMTP_PORT": str(port), "CIM_SMTP_SECURITY": security,
           "CIM_SMTP_USER": USER, "CIM_SMTP_PASSWORD": password, "CIM_SMTP_TIMEOUT_SECONDS": "5",
           "CIM_SMTP_FROM": "CIM <cim@example.org>"}
    if ca_file is not None:
        env["CIM_SMTP_CA_FILE"] = str(ca_file)
    return Mailer.from_settings(Settings.from_env(env))


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_mail_goes_out_over_tls_with_auth_when_the_certificate_checks_out(
    box: Outbox, certs: Certs, starttls_server: tuple[Handler, int], tls_server: tuple[Handler, int], security: str
) -> None:
    handler, port = starttls_server if security == "starttls" else tls_server
    key = enqueue(box, "secure")
    result = box.deliver_due(smtp_sender(mailer_from_env(port, security, ca_file=certs.ca_file)))
    assert result.sent == 1, box.by_key(key)
    assert handler.tls_seen == [True]
    message = message_from_bytes(handler.received[0], policy=default_policy)
    assert "secure@refusing.example" in str(message["To"])


@pytest.mark.parametrize("security", ["starttls", "tls"])
@pytest.mark.parametrize("problem", ["untrusted", "wrong host name"])
def test_a_certificate_that_fails_the_check_sends_nothing_and_is_retried(
    box: Outbox, certs: Certs, starttls_server: tuple[Handler, int], tls_server: tuple[Handler, int],
    security: str, problem: str
) -> None:
    handler, port = starttls_server if security == "starttls" else tls_server
    mailer = (mailer_from_env(port, security) if problem == "untrusted"  # the system's trust store only
              else mailer_from_env(port, security, host="127.0.0.1", ca_file=certs.ca_file))  # names localhost
    key = enqueue(box, "careful")
    result = box.deliver_due(smtp_sender(mailer))
    assert result.retried == 1
    assert result.sent == 0
    row = box.by_key(key)
    assert row is not None
    assert (row.status, row.attempts) == (PENDING, 1)
    assert row.last_error == "SSLCertVerificationError"
    assert handler.rcpts == []
    assert handler.received == []


def test_starttls_against_a_server_without_it_sends_nothing_in_clear(box: Outbox, server: tuple[Handler, int],
                                                                     certs: Certs) -> None:
    handler, port = server  # plain SMTP: no STARTTLS offered
    key = enqueue(box, "downgrade")
    result = box.deliver_due(smtp_sender(mailer_from_env(port, "starttls", host="127.0.0.1",
                                                         ca_file=certs.ca_file)))
    assert result.retried == 1
    row = box.by_key(key)
    assert row is not None
    assert row.status == PENDING
    assert row.last_error is not None
    assert row.last_error.startswith("SMTPNotSupportedError")
    assert handler.rcpts == []
    assert handler.received == []


def test_wrong_credentials_are_retried_not_failed(box: Outbox, certs: Certs,
                                                  tls_server: tuple[Handler, int]) -> None:
    """A refused login is the configuration's problem, not this mail's: every waiting mail goes
    out once it is fixed, without anyone pressing "Retry now"."""
    handler, port = tls_server
    key = enqueue(box, "login")
    result = box.deliver_due(smtp_sender(mailer_from_env(port, "tls", ca_file=certs.ca_file, password="wrong")))
    assert result.retried == 1
    row = box.by_key(key)
    assert row is not None
    assert row.status == PENDING
    assert row.last_error is not None
    assert "SMTPAuthenticationError (SMTP 535)" in row.last_error
    assert handler.received == []


def test_the_ca_file_setting_must_name_a_file(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="CIM_SMTP_CA_FILE"):
        Settings(smtp_ca_file=str(tmp_path / "missing.pem"))


def test_a_server_that_wants_a_login_first_is_retried_not_failed(box: Outbox, certs: Certs,
                                                                 starttls_server: tuple[Handler, int]) -> None:
    """No CIM_SMTP_USER against a server that requires AUTH: it answers MAIL FROM with 530, a 5xx
    about the configuration, not about this mail: retried."""
    handler, port = starttls_server
    mailer = Mailer("localhost", port, "CIM <cim@example.org>", timeout=5, security="starttls",
                    ca_file=str(certs.ca_file))  # no user
    key = enqueue(box, "nologin")
    result = box.deliver_due(smtp_sender(mailer))
    assert result.retried == 1
    row = box.by_key(key)
    assert row is not None
    assert row.status == PENDING
    assert row.last_error is not None
    assert "(SMTP 530)" in row.last_error
    assert handler.received == []
