"""Training (paper Sec. 3.5-3.6): losses, generic/personal mixing, the train loop, checkpoints, multi-GPU, the prior, adaptation and the audio-to-expression stages."""
