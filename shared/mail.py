"""Outgoing mail (Flask-free): sign-in links now, reminders later.

Messages are built with `email.message.EmailMessage` and every header is set through its API, so a
name or subject carrying CR/LF or an encoded word (`=?utf-8?...?=`) can never add a header (S7):
line breaks are refused or folded into spaces before they reach a header, and the generator
encodes non-ASCII text itself. Address headers (From, To) are folded by `MAIL_POLICY`, not by the
standard library: its folder splits a long quoted display name across lines and drops the
quotes, so `Long Name, Mallory <m@attacker.example>, Tail` became three recipients. Here a
display name is always one phrase: plain words as they are, anything else (specials such as
commas, quotes or angle brackets; non-ASCII) as a run of RFC 2047 encoded words. The Message-ID
is derived from a key the caller gives (the same key, the same Message-ID), so a retried send can
be recognised as a duplicate downstream.

`Mailer` sends over SMTP (smtplib; `make run` starts a local aiosmtpd sink on 127.0.0.1:8025);
`RecordingMailer` keeps the messages in a list for unit tests.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import smtplib
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import format_datetime, parseaddr
from functools import lru_cache

from babel.support import NullTranslations, Translations

from shared.config import ROOT, Settings
from shared.errors import CimError

log = logging.getLogger(__name__)

LOCALES = ("en", "sv")


class MailError(CimError):
    """The mail server could not be reached or refused the message."""

    status = 503
    code = "mail_unavailable"
    #: What went wrong: the exception type, the SMTP reply code and the server's answer with every
    #: e-mail address in it masked (`s…@example.org`). Shown on the staff page /outbox.
    reason: str | None = None
    #: The server refused this message for good (a 5xx reply to MAIL FROM, RCPT TO or DATA): the
    #: outbox fails it at once instead of retrying. 4xx replies, refused connections, timeouts,
    #: TLS and authentication failures are transient (retried with backoff).
    permanent: bool = False


_ADDRESS_IN_TEXT = re.compile(r"[^\s<>()\[\]\"',;:@]+@([A-Za-z0-9.-]+)")


def _mask_addresses(text: str) -> str:
    """Every address in a server's answer as `s…@domain`: the answer goes to a staff page and
    into the outbox row (blanked on erasure), never a full address."""
    return _ADDRESS_IN_TEXT.sub(lambda m: f"{m.group(0)[:1]}…@{m.group(1)}", text)


#: 5xx replies that mean "not like this" to the sender's connection rather than to the message:
#: authentication or encryption required (530, 538), login refused (534, 535). A server answers
#: them to MAIL FROM when CIM_SMTP_USER or CIM_SMTP_SECURITY is wrong: transient, like a refused
#: login, so every waiting mail goes out once the setting is fixed.
_CONFIGURATION_CODES = frozenset({530, 534, 535, 538})


def classify(exc: BaseException) -> tuple[bool, str]:
    """(permanent, reason) of a failed SMTP send. Permanent: a 5xx reply to the message itself —
    the sender or the message refused (SMTPSenderRefused, SMTPDataError) or the recipient refused
    (SMTPRecipientsRefused, whose codes are per recipient). Everything else is transient: a 4xx
    reply, a dropped or refused connection, a timeout, a failed TLS handshake or certificate
    check, a refused login or greeting (the server's or our configuration's problem, not this
    message's: retried, and fixed for every waiting mail at once when it is repaired)."""
    name = type(exc).__name__
    code: int | None = None
    text = ""
    raw: bytes | str
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        refused = list(exc.recipients.values())
        if refused:
            code, raw = refused[0]
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    elif isinstance(exc, smtplib.SMTPResponseException):
        code = exc.smtp_code
        raw = exc.smtp_error
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    permanent = (
        code is not None and 500 <= code < 600 and code not in _CONFIGURATION_CODES
        and isinstance(exc, (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPDataError))
    )
    reason = name + (f" (SMTP {code})" if code else "")
    answer = _mask_addresses(" ".join(text.split()))[:300]
    if answer:
        reason += f": {answer}"
    return permanent, reason


def _one_line(value: str, limit: int = 200) -> str:
    """Header text on one line: CR, LF and other control characters become spaces, and "=?" is
    broken up, because the header parser would decode an encoded word (`=?utf-8?q?=0D=0A...?=`)
    back into a line break that the generator then writes out raw. A lone surrogate (no UTF-8
    form) becomes U+FFFD."""
    cleaned = "".join(
        " " if (ord(c) < 32 or ord(c) == 127) else "\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in value
    )
    return " ".join(cleaned.replace("=?", "= ?").split())[:limit]


def _check_headers(msg: EmailMessage) -> None:
    """The last guard: no header value may hold a line break after parsing."""
    for name, value in msg.items():
        if "\r" in str(value) or "\n" in str(value):
            raise ValueError(f"line break in the {name} header")


def _addr_spec(email: str) -> str:
    """A bare address, refused (ValueError) if it could smuggle anything into a header."""
    if any(ord(c) < 33 or ord(c) == 127 for c in email) or email.count("@") != 1 or len(email) > 320:
        raise ValueError("not a single e-mail address")
    local, _, domain = email.partition("@")
    if not local or not domain or any(c in email for c in "<>,;:\"()[]\\"):
        raise ValueError("not a single e-mail address")
    return email


def address(name: str | None, email: str) -> Address:
    """An Address header value: the display name on one line, the address checked."""
    spec = _addr_spec(email)
    local, _, domain = spec.partition("@")
    return Address(display_name=_one_line(name or ""), username=local, domain=domain)


#: A display name that may go into a header as it is: words of RFC 5322 `atext`, single spaces.
_PLAIN_PHRASE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?: [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
#: Bytes of UTF-8 per encoded word: 45 bytes are 60 base64 characters, 72 with `=?utf-8?b?...?=`
#: (RFC 2047 allows 75).
_EW_BYTES = 45
_ADDRESS_HEADERS = frozenset({"from", "to", "cc", "bcc", "reply-to", "sender"})


def _encoded_words(text: str) -> list[str]:
    """`text` as RFC 2047 base64 encoded words of at most _EW_BYTES bytes of whole characters,
    broken after a space where one is near (readers that keep the fold between encoded words as a
    space then show a double space rather than a word cut in two)."""
    chunks: list[bytes] = []
    chunk = b""
    for char in text:
        encoded = char.encode("utf-8")
        if len(chunk) + len(encoded) > _EW_BYTES:
            cut = chunk.rfind(b" ") + 1
            if cut < _EW_BYTES // 2:
                cut = len(chunk)
            chunks.append(chunk[:cut])
            chunk = chunk[cut:]
        chunk += encoded
    if chunk:
        chunks.append(chunk)
    return [f"=?utf-8?b?{base64.b64encode(c).decode('ascii')}?=" for c in chunks]


def phrase_tokens(display_name: str) -> list[str]:
    """The display name as the tokens of one phrase: its words if they are plain `atext` (and no
    "=?" that a reader would take for an encoded word), else encoded words. Folding between the
    tokens cannot change what a parser reads: an encoded word holds its commas, quotes and angle
    brackets encoded, so the phrase never ends early, whatever its length."""
    words = display_name.split(" ")
    if _PLAIN_PHRASE.fullmatch(display_name) and "=?" not in display_name and max(map(len, words)) <= 70:
        return words
    return _encoded_words(display_name)


def format_address(addr: Address) -> list[str]:
    """An address as tokens to fold: the phrase tokens, then `<addr-spec>` (or the bare addr-spec
    when there is no display name)."""
    spec = _addr_spec(addr.addr_spec)
    if not addr.display_name:
        return [spec]
    return [*phrase_tokens(addr.display_name), f"<{spec}>"]


class _MailPolicy(EmailPolicy):
    """The default policy, but address headers are written by `format_address` (see the module
    docstring). Every other header and the body are the standard library's."""

    def _fold(self, name: str, value: object, refold_binary: bool = False) -> str:  # type: ignore[override]
        addresses = getattr(value, "addresses", None)
        if name.lower() not in _ADDRESS_HEADERS or addresses is None:
            return super()._fold(name, value, refold_binary)  # type: ignore[misc]
        limit = self.max_line_length or 78
        lines = [f"{name}:"]
        for n, addr in enumerate(addresses):
            tokens = format_address(addr)
            if n < len(addresses) - 1:
                tokens[-1] += ","
            for token in tokens:
                if len(lines[-1]) + 1 + len(token) > limit and lines[-1] != f"{name}:":
                    lines.append("")
                lines[-1] += " " + token
        return self.linesep.join(lines) + self.linesep


#: The policy of every message built here (smtplib writes a message with its own policy).
MAIL_POLICY = _MailPolicy()


def message_id(key: str, domain: str) -> str:
    """A Message-ID that depends only on `key` (and the sender's domain)."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:40]
    return f"<{digest}@{domain}>"


@lru_cache(maxsize=4)
def _translations(locale: str) -> NullTranslations:
    if locale == "en":
        return NullTranslations()
    return Translations.load(str(ROOT / "translations"), [locale], domain="messages")


def translations(locale: str) -> NullTranslations:
    return _translations(locale if locale in LOCALES else "en")


@dataclass(frozen=True)
class Mail:
    """What a caller wants sent; `key` makes the Message-ID (dedup)."""

    to_email: str
    to_name: str | None
    subject: str
    text: str
    html: str
    key: str
    locale: str = "en"
    #: (file name, MIME type "text/calendar", content) each: the .ics of a booked presentation.
    attachments: tuple[tuple[str, str, bytes], ...] = ()


def build_message(mail: Mail, sender: str, *, date: str | None = None) -> EmailMessage:
    """An EmailMessage: plain text with a simple HTML alternative, all headers via the API."""
    sender_name, sender_addr = parseaddr(sender)
    sender_address = address(sender_name, sender_addr)
    msg = EmailMessage(policy=MAIL_POLICY)
    msg["From"] = sender_address
    msg["To"] = address(mail.to_name, mail.to_email)
    msg["Subject"] = _one_line(mail.subject, 250)
    msg["Message-ID"] = message_id(mail.key, sender_address.domain)
    msg["Auto-Submitted"] = "auto-generated"
    if date is not None:
        msg["Date"] = date
    _check_headers(msg)
    msg.set_content(mail.text)
    msg.add_alternative(mail.html, subtype="html")
    for filename, mime, content in mail.attachments:
        maintype, _, subtype = mime.partition("/")
        params = {"method": "PUBLISH"} if mime == "text/calendar" else {}
        msg.add_attachment(content, maintype=maintype, subtype=subtype, filename=_one_line(filename, 100),
                           params=params)
    # last: set_content() drops Content-* headers, and add_attachment() moves them into the part
    # it wraps the body in (a mail with an .ics had no Content-Language of its own)
    msg["Content-Language"] = mail.locale if mail.locale in LOCALES else "en"
    return msg


class Mailer:
    """SMTP over smtplib. One connection per message: sign-in mails are few and must not wait
    behind a broken pooled connection."""

    def __init__(self, host: str, port: int, sender: str, *, timeout: float = 10.0, security: str = "none",
                 user: str = "", password: str = "", ca_file: str = "") -> None:
        self.ca_file = ca_file
        self.host = host
        self.port = port
        self.sender = sender
        self.timeout = timeout
        self.security = security
        self.user = user
        self.password = password
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> Mailer:
        return cls(settings.smtp_host, settings.smtp_port, settings.smtp_from, timeout=settings.smtp_timeout_seconds,
                   security=settings.smtp_security, user=settings.smtp_user, password=settings.smtp_password,
                   ca_file=settings.smtp_ca_file)

    def build(self, mail: Mail) -> EmailMessage:
        from datetime import UTC, datetime

        return build_message(mail, self.sender, date=format_datetime(datetime.now(UTC)))

    def tls_context(self) -> ssl.SSLContext:
        """ssl's default client context: the certificate must chain to the system's trust store
        (or to `ca_file`, CIM_SMTP_CA_FILE) and name the host; TLS 1.2 at least."""
        context = ssl.create_default_context(cafile=self.ca_file or None)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context

    def _connect(self) -> smtplib.SMTP:
        """A connection by `security`: implicit TLS, STARTTLS (certificate checked against the
        host name), or plain (the local sink); then AUTH if a user is set. With `starttls` a
        server that does not offer STARTTLS, or whose certificate fails the check, gets nothing:
        smtplib raises before any MAIL FROM, and the outbox retries (never sends in clear)."""
        if self.security == "tls":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout,
                                                  context=self.tls_context())
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            if self.security == "starttls":
                try:
                    smtp.starttls(context=self.tls_context())
                except BaseException:
                    smtp.close()
                    raise
        if self.user:
            try:
                smtp.login(self.user, self.password)
            except BaseException:
                smtp.close()
                raise
        return smtp

    def send(self, message: EmailMessage) -> None:
        try:
            with self._connect() as smtp:
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            log.error("mail not sent: %s", type(exc).__name__)
            # `from None`: smtplib's exceptions carry the recipients' addresses, and a logged
            # traceback would write them into the logs (personal data; G1/G3). The type is logged,
            # and kept (with the server's reply code, never its text) for the outbox's staff page.
            error = MailError("The e-mail could not be sent. Try again in a moment.")
            error.permanent, error.reason = classify(exc)
            raise error from None

    def deliver(self, mail: Mail) -> EmailMessage:
        message = self.build(mail)
        self.send(message)
        return message

    def deliver_later(self, mail: Mail) -> EmailMessage:
        """Build now (a bad address fails here), send on a background thread: the page answers
        in the same time whether or not a mail goes out (no account enumeration by timing), and
        a slow mail server does not hold the request. A failed send is logged."""
        message = self.build(mail)
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="cim-mail")
            pool = self._pool
        pool.submit(self._send_logged, message)
        return message

    def _send_logged(self, message: EmailMessage) -> None:
        try:
            self.send(message)
        except MailError:
            pass  # logged by send()
        except Exception:  # a background thread has nobody else to tell
            log.exception("mail not sent")


class RecordingMailer(Mailer):
    """For unit tests: builds messages exactly as the real one does, and keeps them."""

    def __init__(self, sender: str = "CIM <cim-noreply@example.org>", *, fail: bool = False) -> None:
        super().__init__("127.0.0.1", 0, sender)
        self.sent: list[EmailMessage] = []
        self.fail = fail
        self._lock = threading.Lock()

    def send(self, message: EmailMessage) -> None:
        if self.fail:
            raise MailError("The e-mail could not be sent. Try again in a moment.")
        with self._lock:
            self.sent.append(message)

    def deliver_later(self, mail: Mail) -> EmailMessage:
        """At once, so that tests see the message when the request returns."""
        message = self.build(mail)
        self._send_logged(message)
        return message


# -- the messages ----------------------------------------------------------------------------------
def sign_in_link_mail(
    *, to_email: str, to_name: str | None, url: str, minutes: int, locale: str, key: str
) -> Mail:
    """The e-mail carrying a one-time sign-in link, in the recipient's language: the
    `sign_in_link` template (templates/mail/), as the outbox renders it."""
    from shared.mail_templates import render

    lang = locale if locale in LOCALES else "en"
    rendered = render("sign_in_link", lang, {"name": _one_line(to_name or ""), "url": url, "minutes": minutes})
    return Mail(to_email, to_name, rendered.subject, rendered.text, rendered.html, key, lang)
