"""Keeps AWS credentials out of botocore's DEBUG logs, which print every signed request.

botocore logs the `Authorization` header (`Credential=<access key>/...`), the session token header
and canonical request line, and every answer body, STS's temporary credentials included, when
DEBUG is on; the filter rewrites those records before any handler sees them.
"""

from __future__ import annotations

import logging
import re

_CREDENTIAL = re.compile(r"Credential=[^/,\s'\"]+")
_ACCESS_KEY_ID = re.compile(r"(?i)(aws_access_key_id['\"]?\s*[:=]\s*['\"]?)[^'\"\s,}]+")
# Named values, as dict entries, headers, canonical lines or form fields: `name': b'value`,
# `name:value`, `name=value`.
_NAMED_SECRET = re.compile(
    r"(?i)((?:aws_)?(?:secret_access_key|session_token|security_token|x-amz-security-token"
    r"|SecretAccessKey|SessionToken|AccessKeyId|WebIdentityToken)['\"]?\s*[:=]\s*b?['\"]?)"
    r"[^'\"\s,}&<]+"
)
# STS's XML answers.
_XML_SECRET = re.compile(r"(<(?:SecretAccessKey|SessionToken|AccessKeyId)>)[^<]*")
# Every logger of botocore and aiobotocore that prints requests or signing details.
LOGGERS = (
    "botocore.endpoint",
    "botocore.auth",
    "botocore.awsrequest",
    "botocore.httpsession",
    "botocore.hooks",
    "botocore.retryhandler",
    "aiobotocore.endpoint",
    "aiobotocore.httpsession",
    "aiobotocore.hooks",
)


class RedactAwsCredentials(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _ACCESS_KEY_ID.sub(
            r"\1<redacted>", _CREDENTIAL.sub("Credential=<redacted>", message)
        )
        redacted = _XML_SECRET.sub(r"\1<redacted>", _NAMED_SECRET.sub(r"\1<redacted>", redacted))
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def install() -> None:
    """Idempotent: adds the filter once to each logger, and to every SDK logger made so far."""
    known = [
        name
        for name in logging.root.manager.loggerDict
        if name.split(".")[0] in ("botocore", "aiobotocore")
    ]
    for name in (*LOGGERS, "botocore.parsers", "botocore.credentials", *known):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactAwsCredentials) for f in logger.filters):
            logger.addFilter(RedactAwsCredentials())
