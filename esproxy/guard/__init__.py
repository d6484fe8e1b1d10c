"""The guard: keeps every forwarded request away from esproxy's own indices in the cluster.

It reads a request as Elasticsearch does, in small named steps, like ES's own
IndexNameExpressionResolver: `target` splits and decodes the request target, `routes` says which
path segments and parameters hold index expressions, `expressions` resolves each expression
against the reserved names, `bodies` checks the few small admin bodies that name indices or
patterns, and `resolver` puts them together. `names` learns the indices' aliases from the cluster.
"""

from esproxy.guard.resolver import BodyCheck, Guard

__all__ = ["BodyCheck", "Guard"]
