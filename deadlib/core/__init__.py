"""Cross-cutting plumbing: params.yaml access (config), progress bars, atomic file writes, the image/series measures shared by training and evaluation."""
