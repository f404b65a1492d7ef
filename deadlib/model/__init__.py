"""Networks (paper Sec. 3.2-3.3): neural texture, StyleGAN2-style generator and discriminator, audio encoder, renderer (audio-to-expression: ``deadlib.audio2expr``)."""
