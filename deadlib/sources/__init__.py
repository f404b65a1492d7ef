"""Corpora from outside the repository: a user's own folder of clips (issue 14)."""
