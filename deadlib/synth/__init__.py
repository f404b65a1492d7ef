"""The embedded synthetic corpus: procedural heads, formant speech, and the DVC-tracked data/raw folder they fill."""
