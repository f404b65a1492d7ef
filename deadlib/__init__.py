"""deadlib — models and algorithms of DEAD: Data-Efficient Audiovisual Dubbing.

Notebooks under ``notebooks/`` call into this package; nothing here imports a notebook.
One concept per module: ``config`` (params + profiles), ``synth`` / ``speech`` (embedded
corpus), ``facemesh`` (mesh topology), ``corpus`` (the DVC-tracked raw data), ...
"""

__version__ = "0.1.0"
