"""What a small CNN "sees": feature maps of a random conv -> ReLU -> pool stack.

    python examples/cnn_feature_maps.py [--out feature_maps.png] [--seed 0]

Runs a photograph that ships with matplotlib (nothing is downloaded) through
three blocks of conv2d (3x3, random He-initialised weights, the first layer
seeded with edge and blob detectors) -> ReLU -> max_pool2d, and writes a PNG
grid: the input, then the strongest feature maps of every block.
"""

from __future__ import annotations

import argparse

import numpy as np
from _image import sample_image

import fastconv


def first_layer(rng: np.random.Generator, channels: int) -> np.ndarray:
    """Edge detectors at four orientations, a blob detector, and random filters."""
    sobel = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float32)
    diag = np.array([[0, 1, 2], [-1, 0, 1], [-2, -1, 0]], dtype=np.float32)
    blob = np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], dtype=np.float32)
    fixed = [sobel, sobel.T, diag, diag[::-1], blob]
    rand = rng.standard_normal((channels - len(fixed), 3, 3)).astype(np.float32)
    return np.concatenate([np.stack(fixed), rand])[:, None]


def feature_maps(image: np.ndarray, seed: int = 0, widths=(8, 16, 32)) -> list[np.ndarray]:
    """Activations (C, H, W) after each conv -> ReLU -> 2x2 max-pool block."""
    rng = np.random.default_rng(seed)
    x = (image - image.mean())[None, None].astype(np.float32)
    maps = []
    c_in = 1
    for k, c_out in enumerate(widths):
        if k == 0:
            w = first_layer(rng, c_out)
        else:
            w = rng.standard_normal((c_out, c_in, 3, 3)).astype(np.float32) * np.sqrt(2.0 / (9 * c_in))
        b = np.zeros(c_out, np.float32)
        x = fastconv.conv2d(x, w, b, padding=1)
        x = np.maximum(x, 0)  # ReLU
        x = fastconv.max_pool2d(x, 2)
        maps.append(x[0])
        c_in = c_out
    return maps


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="feature_maps.png")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-block", type=int, default=6, help="feature maps shown per block")
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    image = sample_image()
    maps = feature_maps(image, args.seed)
    cols = args.per_block
    fig, axes = plt.subplots(len(maps) + 1, cols, figsize=(2 * cols, 2.1 * (len(maps) + 1)))
    for ax in axes.ravel():
        ax.axis("off")
    axes[0, 0].imshow(image, cmap="gray")
    axes[0, 0].set_title(f"input {image.shape[0]}x{image.shape[1]}", fontsize=8)
    for row, m in enumerate(maps, start=1):
        strongest = np.argsort(m.reshape(len(m), -1).mean(1))[::-1][:cols]
        for col, c in enumerate(strongest):
            axes[row, col].imshow(m[c], cmap="magma")
            axes[row, col].set_title(f"block {row}, ch {c}, {m.shape[1]}x{m.shape[2]}", fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out, dpi=90)
    print(f"wrote {args.out}: " + ", ".join(f"block {i + 1} {m.shape}" for i, m in enumerate(maps)))


if __name__ == "__main__":
    main()
