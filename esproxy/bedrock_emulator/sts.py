"""The STS query API as botocore sends it: AssumeRole, AssumeRoleWithWebIdentity, GetCallerIdentity.

Requests are form-encoded POSTs to `/` (`Action=...&Version=2011-06-15`); answers are STS's XML.
Signed calls are verified like model calls, scoped to the `sts` signing name; errors carry STS's
own codes (InvalidClientTokenId, SignatureDoesNotMatch, ExpiredToken, AccessDenied, ...).
"""

from __future__ import annotations

import hmac
import logging
import re
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Final
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from aiohttp import web

from esproxy.bedrock_emulator.errors import BedrockError
from esproxy.bedrock_emulator.identities import (
    ACCOUNT_ID,
    TemporaryCredentials,
    split_role,
    stable_suffix,
)
from esproxy.bedrock_emulator.request_log import RecordedRequest
from esproxy.bedrock_emulator.signing import SignedCall, check_signature
from esproxy.bedrock_emulator.state import EMULATOR_STATE, EmulatorState

log = logging.getLogger(__name__)

NAMESPACE: Final = "https://sts.amazonaws.com/doc/2011-06-15/"
SIGNING_NAME: Final = "sts"
# Bedrock's front-door codes, as STS names them.
STS_CODES: Final[Mapping[str, tuple[str, int]]] = {
    "MissingAuthenticationTokenException": ("MissingAuthenticationToken", 403),
    "IncompleteSignatureException": ("IncompleteSignature", 400),
    "UnrecognizedClientException": ("InvalidClientTokenId", 403),
    "InvalidSignatureException": ("SignatureDoesNotMatch", 403),
    "ExpiredTokenException": ("ExpiredToken", 400),
}
STS_MESSAGES: Final[Mapping[str, str]] = {
    "InvalidClientTokenId": "The security token included in the request is invalid.",
    "ExpiredToken": "The security token included in the request is expired",
}
SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}")
EXTERNAL_ID = re.compile(r"[\w+=,.@:/-]{2,1224}")
SECRET_PARAMETERS = frozenset({"WebIdentityToken"})


class StsError(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code} ({status}): {message}")
        self.code = code
        self.message = message
        self.status = status

    def to_response(self, request_id: str) -> web.Response:
        kind = "Receiver" if self.status >= 500 else "Sender"
        body = (
            f'<ErrorResponse xmlns="{NAMESPACE}">\n  <Error>\n    <Type>{kind}</Type>\n'
            f"    <Code>{escape(self.code)}</Code>\n    <Message>{escape(self.message)}</Message>\n"
            f"  </Error>\n  <RequestId>{request_id}</RequestId>\n</ErrorResponse>\n"
        )
        return xml_response(body, self.status, request_id)


def from_front_door(error: BedrockError) -> StsError:
    code, status = STS_CODES.get(error.code, (error.code, error.status))
    return StsError(code, STS_MESSAGES.get(code, error.message), status)


async def handle_sts(request: web.Request) -> web.Response:
    request_id = str(uuid.uuid4())
    state = request.app[EMULATOR_STATE]
    body = await request.read()
    params = dict(parse_qsl(request.rel_url.raw_query_string))
    params.update(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
    action = params.get("Action", "")
    caller: str | None = None
    verified = False
    try:
        handler = ACTIONS.get(action)
        if handler is None:
            raise StsError(
                "InvalidAction",
                f"Could not find operation {action} for version {params.get('Version', '')}",
            )
        if action != "AssumeRoleWithWebIdentity":  # the one unsigned action
            caller, verified = authenticate(request, body, state)
        response = handler(state, params, caller, request_id)
    except StsError as error:
        response = error.to_response(request_id)
    state.sts_requests.record(
        RecordedRequest(
            action,
            params.get("RoleArn", ""),
            {k: v for k, v in params.items() if k not in SECRET_PARAMETERS},
            verified,
            caller,
        )
    )
    log.info("STS %s -> %d", action or "?", response.status)
    return response


def authenticate(
    request: web.Request, body: bytes, state: EmulatorState
) -> tuple[str | None, bool]:
    signed = SignedCall.of(request, body)
    check = check_signature(
        signed,
        state.settings.keys,
        state.settings.clock_skew_s,
        temporary=state.identities.temporary,
        service=SIGNING_NAME,
    )
    if check.error is not None:
        raise from_front_door(check.error)
    return check.access_key, check.signature_verified


def assume_role(
    state: EmulatorState, params: Mapping[str, str], caller: str | None, request_id: str
) -> web.Response:
    role_arn, session_name, duration = read_grant(params)
    external_id = params.get("ExternalId")
    if external_id is not None and not EXTERNAL_ID.fullmatch(external_id):
        raise constraint("externalId", external_id, EXTERNAL_ID.pattern)
    required = state.identities.roles.get(role_arn, "")
    allowed = role_arn in state.identities.roles and (
        required is None or (external_id is not None and hmac.compare_digest(external_id, required))
    )
    if not allowed:
        raise StsError(
            "AccessDenied",
            f"User: {caller_arn(state, caller)} is not authorized to perform: sts:AssumeRole on "
            f"resource: {role_arn}",
            403,
        )
    granted = state.identities.issue(role_arn, session_name, duration)
    result = (
        f"    <AssumedRoleUser>\n{assumed_role_user(granted)}    </AssumedRoleUser>\n"
        f"{credentials_xml(granted)}    <PackedPolicySize>0</PackedPolicySize>\n"
    )
    return result_response("AssumeRole", result, request_id)


def assume_role_with_web_identity(
    state: EmulatorState, params: Mapping[str, str], caller: str | None, request_id: str
) -> web.Response:
    role_arn, session_name, duration = read_grant(params)
    token = params.get("WebIdentityToken", "")
    expected = state.identities.web_identity_token
    if not token or expected is None or not hmac.compare_digest(token, expected):
        raise StsError(
            "InvalidIdentityToken",
            "The web identity token that was passed could not be validated by Amazon Web "
            "Services. Get a new identity token from the identity provider and then retry the "
            "request.",
        )
    if role_arn not in state.identities.roles:
        raise StsError(
            "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity", 403
        )
    granted = state.identities.issue(role_arn, session_name, duration)
    result = (
        f"{credentials_xml(granted)}"
        "    <SubjectFromWebIdentityToken>system:serviceaccount:default:esproxy"
        "</SubjectFromWebIdentityToken>\n"
        f"    <AssumedRoleUser>\n{assumed_role_user(granted)}    </AssumedRoleUser>\n"
        "    <Provider>emulator.local</Provider>\n    <Audience>sts.amazonaws.com</Audience>\n"
    )
    return result_response("AssumeRoleWithWebIdentity", result, request_id)


def get_caller_identity(
    state: EmulatorState, params: Mapping[str, str], caller: str | None, request_id: str
) -> web.Response:
    issued = state.identities.temporary(caller) if caller else None
    if issued is not None:
        arn = issued.assumed_role_arn
        user_id = f"{issued.role_id}:{issued.session_name}"
        account = split_role(issued.role_arn)[0]
    else:
        arn = caller_arn(state, caller)
        user_id = "AIDA" + stable_suffix(caller or "anonymous")
        account = ACCOUNT_ID
    result = (
        f"    <Arn>{escape(arn)}</Arn>\n    <UserId>{escape(user_id)}</UserId>\n"
        f"    <Account>{account}</Account>\n"
    )
    return result_response("GetCallerIdentity", result, request_id)


ACTIONS: Final[
    Mapping[str, Callable[[EmulatorState, Mapping[str, str], str | None, str], web.Response]]
] = {
    "AssumeRole": assume_role,
    "AssumeRoleWithWebIdentity": assume_role_with_web_identity,
    "GetCallerIdentity": get_caller_identity,
}


def read_grant(params: Mapping[str, str]) -> tuple[str, str, float | None]:
    role_arn = params.get("RoleArn")
    session_name = params.get("RoleSessionName")
    if not role_arn:
        raise StsError("MissingParameter", "The request must contain the parameter RoleArn")
    if not session_name:
        raise StsError("MissingParameter", "The request must contain the parameter RoleSessionName")
    if not SESSION_NAME.fullmatch(session_name):
        raise constraint("roleSessionName", session_name, r"[\w+=,.@-]*")
    duration = params.get("DurationSeconds")
    if duration is None:
        return role_arn, session_name, None
    if not duration.isdigit() or not 900 <= int(duration) <= 43200:
        raise constraint(
            "durationSeconds", duration, "Member must have value between 900 and 43200"
        )
    return role_arn, session_name, float(duration)


def constraint(name: str, value: str, rule: str) -> StsError:
    if not rule.startswith("Member"):
        rule = f"Member must satisfy regular expression pattern: {rule}"
    return StsError(
        "ValidationError",
        f"1 validation error detected: Value '{value}' at '{name}' failed to satisfy constraint: "
        f"{rule}",
    )


def caller_arn(state: EmulatorState, caller: str | None) -> str:
    issued = state.identities.temporary(caller) if caller else None
    if issued is not None:
        return issued.assumed_role_arn
    return f"arn:aws:iam::{ACCOUNT_ID}:user/emulator"


def assumed_role_user(granted: TemporaryCredentials) -> str:
    return (
        f"      <AssumedRoleId>{granted.role_id}:{escape(granted.session_name)}</AssumedRoleId>\n"
        f"      <Arn>{escape(granted.assumed_role_arn)}</Arn>\n"
    )


def credentials_xml(granted: TemporaryCredentials) -> str:
    expiration = datetime.fromtimestamp(granted.expires_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        "    <Credentials>\n"
        f"      <AccessKeyId>{granted.access_key}</AccessKeyId>\n"
        f"      <SecretAccessKey>{escape(granted.secret_key)}</SecretAccessKey>\n"
        f"      <SessionToken>{escape(granted.session_token)}</SessionToken>\n"
        f"      <Expiration>{expiration}</Expiration>\n"
        "    </Credentials>\n"
    )


def result_response(action: str, result: str, request_id: str) -> web.Response:
    body = (
        f'<{action}Response xmlns="{NAMESPACE}">\n  <{action}Result>\n{result}'
        f"  </{action}Result>\n  <ResponseMetadata>\n    <RequestId>{request_id}</RequestId>\n"
        f"  </ResponseMetadata>\n</{action}Response>\n"
    )
    return xml_response(body, 200, request_id)


def xml_response(body: str, status: int, request_id: str) -> web.Response:
    return web.Response(
        status=status,
        body=body.encode(),
        headers={"Content-Type": "text/xml", "x-amzn-RequestId": request_id},
    )
