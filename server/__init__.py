"""CouchDB-compatible HTTP layer: the app, its routes, errors and handlers."""
