"""settee.client: a Python client for settee and CouchDB over HTTP."""
