"""The example image: a photograph that ships with matplotlib (no download)."""

from __future__ import annotations

import numpy as np


def sample_image() -> np.ndarray:
    """Grace Hopper's portrait from matplotlib's sample data, grayscale float32 in [0, 1]."""
    import matplotlib.image as mpimg
    from matplotlib import cbook

    with cbook.get_sample_data("grace_hopper.jpg") as fh:
        rgb = mpimg.imread(fh, format="jpg").astype(np.float32) / 255.0
    return rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
