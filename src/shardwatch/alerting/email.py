"""Email: SMTP with a timeout, optional STARTTLS or SSL and optional auth.

The password is a `SecretStr`, read only at login. Each email has a plain-text part and an
escaped HTML part (text.py), a `Date` header and a `Message-ID` on the sender's domain.
"""

from __future__ import annotations

import html
import smtplib
import ssl
import time
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Literal

from pydantic import SecretStr

from shardwatch.alerting.message import DeliveryError, Message, Retry, Sleep
from shardwatch.alerting.text import html_line, message_id_domain, plain_line
from shardwatch.alerting.text import subject_line as _subject
from shardwatch.core.alert_items import AlertItem

Security = Literal["none", "starttls", "ssl"]
EMAIL_MAX_ITEMS = 500  # items per email
EMAIL_MAX_TEXT = 100_000  # characters of item text per email (twice that with the HTML part)


class EmailChannel:
    """SMTP with a timeout, optional STARTTLS or SSL and optional auth. A 4xx reply or a
    dropped connection is transient (retried, bounded); a 5xx reply is permanent."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        recipients: Sequence[str],
        username: str | None = None,
        password: SecretStr | None = None,
        security: Security = "none",
        timeout: float = 10.0,
        name: str = "email",
        retry: Retry | None = None,
        sleep: Sleep = time.sleep,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if not recipients:
            raise ValueError("email channel needs at least one recipient")
        self.name = name
        self.host, self.port, self.sender = host, port, sender
        self.recipients = list(recipients)
        self.username = username
        self._password = password
        self.security = security
        self.timeout = timeout
        self.retry = retry or Retry(attempts=3)
        self._sleep = sleep
        self._ssl = ssl_context

    def __repr__(self) -> str:
        return f"EmailChannel(name={self.name!r}, host={self.host!r}, port={self.port})"

    def capacity(self, items: Sequence[AlertItem]) -> int:
        """How many of `items` fit in one email of a sane size (at least 1)."""
        total = 0
        for n, item in enumerate(items):
            total += len(plain_line(item)) + 3
            if n >= EMAIL_MAX_ITEMS or total > EMAIL_MAX_TEXT:
                return max(1, n)
        return len(items)

    def build(self, message: Message) -> EmailMessage:
        """A text part and an escaped HTML part, with `Date` (UTC) and a `Message-ID` on
        the sender's domain (not this machine's name)."""
        mail = EmailMessage()
        subject = _subject(message.title)
        mail["Subject"] = subject[:200]
        mail["From"] = self.sender
        mail["To"] = ", ".join(self.recipients)
        mail["Date"] = formatdate(usegmt=True)
        mail["Message-ID"] = make_msgid("shardwatch", domain=message_id_domain(self.sender))
        mail.set_content(message.text())
        rows = "".join(f"<li>{html_line(i)}</li>" for i in message.items)
        mail.add_alternative(
            f"<html><body><h3>{html.escape(subject)}</h3><ul>{rows}</ul></body></html>",
            subtype="html",
        )
        return mail

    def send(self, message: Message) -> None:
        mail = self.build(message)
        last = DeliveryError("not attempted", permanent=False)
        for attempt in range(1, self.retry.attempts + 1):
            try:
                self._send_once(mail)
                return
            except smtplib.SMTPResponseException as exc:
                code = int(exc.smtp_code)
                text = _smtp_text(exc.smtp_error)
                if 500 <= code < 600:
                    raise DeliveryError(f"smtp: {code} {text}", permanent=True) from None
                last = DeliveryError(f"smtp: {code} {text}", permanent=False)
            except smtplib.SMTPRecipientsRefused as exc:
                codes = sorted({int(c) for c, _ in exc.recipients.values()})
                permanent = all(500 <= c < 600 for c in codes)
                last = DeliveryError(f"smtp: recipients refused {codes}", permanent=permanent)
                if permanent:
                    raise last from None
            except (smtplib.SMTPServerDisconnected, smtplib.SMTPException, OSError) as exc:
                last = DeliveryError(
                    f"smtp: {type(exc).__name__} (connection lost or refused)", permanent=False
                )
            if attempt < self.retry.attempts:
                self._sleep(self.retry.delay(attempt))
        raise last

    def _tls_context(self) -> ssl.SSLContext:
        """The given context, else the system default (made only when TLS is used)."""
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    def _send_once(self, mail: EmailMessage) -> None:
        smtp: smtplib.SMTP
        if self.security == "ssl":
            smtp = smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=self._tls_context()
            )
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with smtp:
            if self.security == "starttls":
                smtp.starttls(context=self._tls_context())
            if self.username is not None and self._password is not None:
                smtp.login(self.username, self._password.get_secret_value())
            smtp.send_message(mail)


def _smtp_text(raw: bytes | str) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return " ".join(text.split())[:200]
