"""Training (paper Sec. 3.5-3.6): losses, generic/personal mixing, the train loop, checkpoints, multi-GPU, the prior and adaptation (audio-to-expression trains in ``deadlib.audio2expr``)."""
