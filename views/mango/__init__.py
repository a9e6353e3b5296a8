"""Mango: selectors planned onto json indexes, `_find` executed over the view index machinery."""
