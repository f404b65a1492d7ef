"""Measuring: image/video/lip-sync metrics, per-identity evaluation, study cells and tables."""
