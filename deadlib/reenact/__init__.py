"""Self-reenactment: dubs of held-out people scored against their real frames (issue 14)."""
