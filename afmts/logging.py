"""A logging filter that masks anything shaped like a credential before it is written."""

import logging
import re

# Provider keys (sk-..., sk-ant-..., gsk_..., hf_..., AIza...), our own keys (afmts_...), bearer tokens.
SECRET_RE = re.compile(
    r"(?i)(bearer\s+)[A-Za-z0-9._\-]{8,}"
    r"|\b(sk-[A-Za-z0-9_\-]{8,}|gsk_[A-Za-z0-9]{8,}|hf_[A-Za-z0-9]{8,}|AIza[0-9A-Za-z_\-]{20,}|afmts_[A-Za-z0-9]{8,})"
)


def redact(text: str) -> str:
    return SECRET_RE.sub(lambda m: (m.group(1) or "") + "***", text)


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        # A traceback is formatted after filters run, and an upstream error often quotes the URL or
        # header it was sent: format it now so that its text is masked too.
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
