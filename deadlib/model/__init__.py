"""Networks (paper Sec. 3.2-3.4): neural texture, StyleGAN2-style generator and discriminator, audio encoder, renderer, audio-to-expression and its per-person style layer."""
