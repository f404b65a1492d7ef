"""From a video file to training windows (paper Sec. 3.1): decoding, face tracking, 3D face fit, crops, UV/mask rasterisation, the prepare stage and the window dataset."""
