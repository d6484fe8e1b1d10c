"""Where endpoints are kept: memory, SQLite, or an index on the upstream cluster."""
