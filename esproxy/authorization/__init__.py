"""Who may call esproxy's own `_inference` API: one authorizer per `[auth] mode`.

Forwarded requests are not checked here; the cluster checks them with the caller's credentials.
"""
