"""Audio-to-expression (paper Sec. 3.4): the multi-person speech → expression transformer, its
per-person style layer (scale + bias per coefficient), their losses, and the stages that train them.

Its own subpackage, beside ``model`` (the renderer's networks): the study's adaptation cells never
import it, so a change here reruns only the audio-to-expression, style and dubbing stages.
"""
