"""Dubbing a video with new speech: inputs, per-person preparation (adapt-now), rendering, blending, the report and the studio widget."""
