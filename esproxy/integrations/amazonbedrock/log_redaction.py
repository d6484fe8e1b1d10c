"""Keeps AWS access keys out of botocore's DEBUG logs, which print every signed request.

botocore logs the `Authorization` header (`Credential=<access key>/...`) when DEBUG is on; the
filter rewrites those records before any handler sees them.
"""

from __future__ import annotations

import logging
import re

_CREDENTIAL = re.compile(r"Credential=[^/,\s'\"]+")
_ACCESS_KEY_ID = re.compile(r"(?i)(aws_access_key_id['\"]?\s*[:=]\s*['\"]?)[^'\"\s,}]+")
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
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def install() -> None:
    """Idempotent: adds the filter once to each logger."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactAwsCredentials) for f in logger.filters):
            logger.addFilter(RedactAwsCredentials())
