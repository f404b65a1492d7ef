"""Maintenance commands: README tables generated from metrics, the package layout check."""
