"""The HTTP surface: routes, thin handlers, middleware and response rendering."""
