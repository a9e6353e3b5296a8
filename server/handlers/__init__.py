"""Request handlers, one module per CouchDB resource."""
