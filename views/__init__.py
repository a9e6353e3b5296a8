"""Incremental map-reduce views over the store's changes feed."""
