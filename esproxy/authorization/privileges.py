"""What a caller asks for (an ES cluster privilege and action) and Elasticsearch's texts about it.

The action names and the privileges that grant them are Elasticsearch's own (its inference
plugin's action names; `ClusterPrivilegeResolver` ordering), so denials read as the cluster's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from esproxy.errors import AuthenticationFailed

# The privileges that grant each kind of action, least to most powerful, as ES lists them.
MONITOR_GRANTS = ("monitor_inference", "manage_inference", "monitor", "manage", "all")
MANAGE_GRANTS = ("manage_inference", "manage", "all")

UNABLE_TO_AUTHENTICATE = (
    "unable to authenticate with provided credentials and anonymous access is not allowed for "
    "this request"
)


@dataclass(frozen=True)
class Credentials:
    """What a caller presented; never printed, logged or used as a cache key as it is."""

    authorization: str | None = field(default=None, repr=False)
    run_as: str | None = field(default=None, repr=False)  # ES's `es-security-runas-user`


@dataclass(frozen=True)
class Privilege:
    name: str  # the cluster privilege asked of `_has_privileges`
    action: str  # ES's action name for the same call, quoted in denials
    granted_by: tuple[str, ...]


GET_ENDPOINTS = Privilege(
    "monitor_inference", "cluster:monitor/xpack/inference/get", MONITOR_GRANTS
)
GET_SERVICES = Privilege(
    "monitor_inference", "cluster:monitor/xpack/inference/services/get", MONITOR_GRANTS
)
# Inference and `_stream` share ES's action name.
INFER = Privilege("monitor_inference", "cluster:monitor/xpack/inference", MONITOR_GRANTS)
PUT_ENDPOINT = Privilege("manage_inference", "cluster:admin/xpack/inference/put", MANAGE_GRANTS)
UPDATE_ENDPOINT = Privilege(
    "manage_inference", "cluster:admin/xpack/inference/update", MANAGE_GRANTS
)
DELETE_ENDPOINT = Privilege(
    "manage_inference", "cluster:admin/xpack/inference/delete", MANAGE_GRANTS
)
# esproxy's own: clearing the embedding cache is an inference admin's act.
CLEAR_EMBEDDING_CACHE = Privilege(
    "manage_inference", "cluster:admin/esproxy/embedding_cache/clear", MANAGE_GRANTS
)


def missing_credentials(uri: str, challenges: tuple[str, ...]) -> AuthenticationFailed:
    return AuthenticationFailed(
        f"missing authentication credentials for REST request [{uri}]", challenges=challenges
    )


def unauthorized(privilege: Privilege, subject: str) -> str:
    """ES's `actionDenied` text for a cluster action."""
    return (
        f"action [{privilege.action}] is unauthorized for {subject}, this action is granted by "
        f"the cluster privileges [{','.join(privilege.granted_by)}]"
    )


def describe_subject(authenticated: Mapping[str, Any] | None, username: str | None) -> str:
    """How ES names a caller in a denial, from its `_authenticate` answer when there is one.

    API keys and service accounts have no roles of their own, so ES names none for them.
    """
    if not authenticated:
        return f"user [{username}]"
    name = authenticated.get("username", username)
    realm = authenticated.get("authentication_realm")
    if isinstance(realm, dict) and realm.get("type") == "_service_account":
        return f"service account [{name}]"
    api_key = authenticated.get("api_key")
    if authenticated.get("authentication_type") == "api_key" and isinstance(api_key, dict):
        return f"API key id [{api_key.get('id')}] of user [{name}]"
    roles = authenticated.get("roles")
    names = sorted(str(role) for role in roles) if isinstance(roles, list) else []
    return f"user [{name}] with effective roles [{','.join(names)}]"
