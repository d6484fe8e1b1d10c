"""The `GET /` body esproxy gives with no cluster behind it, so `info()` and `ping()` work."""

from __future__ import annotations

import base64
import hashlib
import socket
from typing import Any

from esproxy import __version__
from esproxy.settings import Settings

# The Elasticsearch release whose `_inference` behaviour esproxy reproduces.
ES_VERSION = "9.2.0"


def cluster_info(settings: Settings) -> dict[str, Any]:
    # A uuid that is stable for one data dir, like a real cluster's, without storing anything.
    digest = hashlib.sha256(str(settings.storage.data_dir.resolve()).encode()).digest()
    return {
        "name": socket.gethostname(),
        "cluster_name": "esproxy",
        "cluster_uuid": base64.urlsafe_b64encode(digest[:16]).decode().rstrip("="),
        "version": {
            "number": ES_VERSION,
            "build_flavor": "default",
            "build_type": "esproxy",
            "build_hash": f"esproxy-{__version__}",
            "build_date": "2026-01-01T00:00:00.000Z",
            "build_snapshot": False,
            "lucene_version": "10.3.1",
            "minimum_wire_compatibility_version": "8.19.0",
            "minimum_index_compatibility_version": "8.0.0",
        },
        "tagline": "You Know, for Search",
    }
