"""Publish: the reports (``reports``) and the SIEM exports (``export``)."""
