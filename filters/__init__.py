"""Restoration stages, one public filter per module (installed as ``vsrestore.filters``)."""
