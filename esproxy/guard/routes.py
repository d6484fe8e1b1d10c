"""Step 2: the route table, which says where a request names indices.

Elasticsearch matches a path against its routes with explicit segments preferred to `{index}`,
so a first segment is an index expression unless it is exactly an API's name (`_all,` and `_foo`
are expressions). Path and query parameters share one map in ES, so `?index=` names indices on
every route, including those with no index in the path. An API that names no index acts on all
of them (`_all`), unless it has nothing to do with indices.
"""

from __future__ import annotations

from dataclasses import dataclass

from esproxy.guard.target import Target

# First segments of APIs that read or write no index when the path names none (bulk and
# multi-document APIs name theirs in the body, which only the cluster's privileges fence).
INDEX_FREE = frozenset(
    {
        "_bulk", "_delete_by_query", "_mget", "_mtermvectors", "_query", "_reindex", "_sql",
        "_update_by_query",
        "_alias", "_aliases", "_application", "_autoscaling", "_cat", "_cluster",
        "_component_template", "_connector", "_dangling", "_data_stream", "_enrich", "_esproxy",
        "_features", "_health_report", "_ilm", "_index_template", "_inference", "_info",
        "_ingest", "_license", "_logstash", "_migration", "_ml", "_nodes", "_opendistro",
        "_plugins", "_query_rules", "_remote", "_render", "_resolve", "_script_context",
        "_script_language", "_scripts", "_security", "_slm", "_snapshot", "_ssl", "_synonyms",
        "_tasks", "_template", "_text_structure", "_transform", "_watcher", "_xpack",
    }
)  # fmt: skip
# First segments of APIs: never index expressions themselves (ES matches them exactly).
API_ROOTS = INDEX_FREE | frozenset(
    {
        "_all", "_async_search", "_bulk", "_cache", "_close", "_count", "_delete_by_query",
        "_disk_usage", "_eql", "_field_caps", "_flush", "_forcemerge", "_knn_search", "_mapping",
        "_mappings", "_mget", "_msearch", "_mtermvectors", "_open", "_pit", "_query", "_rank_eval",
        "_recovery", "_refresh", "_reindex", "_search", "_search_shards", "_segments", "_settings",
        "_shard_stores", "_sql", "_stats", "_termvectors", "_update_by_query", "_upgrade",
        "_validate",
    }
)  # fmt: skip
# `_cat/{api}/{index}`: the cat APIs that list indices (or aliases) and take an expression.
CAT_INDEXED = frozenset({"aliases", "count", "indices", "recovery", "segments", "shards"})
# `/{index}/{api}/{name}`: APIs whose third segment names an alias or a new index.
SECOND_NAMES = frozenset({"_alias", "_aliases", "_clone", "_rollover", "_shrink", "_split"})
# Query parameters that name indices or aliases on some route that has no such path segment.
NAMING_PARAMS = ("index", "indices", "name", "alias", "target", "new_index")
# Admin routes whose small JSON bodies name indices, aliases or index patterns.
BODY_ROUTES = {
    ("_template", "PUT"), ("_template", "POST"),
    ("_index_template", "PUT"), ("_index_template", "POST"),
    ("_aliases", "POST"), ("_aliases", "PUT"),
    ("_reindex", "POST"), ("_reindex", "PUT"),
}  # fmt: skip


@dataclass(frozen=True)
class Named:
    expressions: tuple[str, ...]  # each a comma-separated expression, still to be split
    body: str | None  # the admin API whose body must be read, if any


def named_indices(method: str, target: Target) -> Named:
    segments, params = target.segments, target.params
    found: list[str] = []
    for name in NAMING_PARAMS:
        found += params.get(name, ())
    if not segments:
        return Named(tuple(found), None)
    first = segments[0]
    if first not in API_ROOTS:
        found.append(first)
        if len(segments) > 2 and segments[1] in SECOND_NAMES:
            found.append(segments[2])
        return Named(tuple(found), body_api(method, segments[1:]))
    in_path = named_in_api_path(segments)
    if in_path is not None:
        found.append(in_path)
    elif not ("index" in params or "indices" in params) and (
        first not in INDEX_FREE
        or (first == "_cat" and segments[1:2] and segments[1] in CAT_INDEXED)
    ):
        found.append("_all")  # an API that names no index acts on all of them
    return Named(tuple(found), body_api(method, segments))


def named_in_api_path(segments: tuple[str, ...]) -> str | None:
    """The index part of `_cat/{api}/{index}`, `_alias/{name}` and their kin, if given."""
    first, rest = segments[0], segments[1:]
    if first == "_cat" and len(rest) > 1 and rest[0] in CAT_INDEXED:
        return rest[1]
    if first in ("_alias", "_aliases") and rest:
        return rest[0]
    if first == "_resolve" and len(rest) > 1:
        return rest[1]
    if first == "_cluster" and rest[:1] == ("health",) and len(rest) > 1:
        return rest[1]
    if first == "_cluster" and rest[:1] == ("state",) and len(rest) > 2:
        return rest[2]
    return None


def body_api(method: str, segments: tuple[str, ...]) -> str | None:
    """`_template`, `_index_template`, `_aliases` or `_reindex` when the body decides."""
    if not segments:
        return None
    api = segments[0]
    if (api, method) not in BODY_ROUTES:
        return None
    if api.endswith("template") and (len(segments) < 2 or segments[1].startswith("_simulate")):
        return None  # simulations change nothing; a template needs a name
    return api
