"""The scanpath model's density of each next fixation along one human scanpath (teacher forcing):

    ATTNLAB_OSIE_ROOT=../shared/data/osie python scripts/conditional_densities.py <scanpath ckpt> \
        [--image 0] [--observer 0] [--steps 6] [--out docs/scanpath/conditional_densities.png]

One panel per fixation t: the OSIE test image (seed=100 split) with p(x_t | image, x_<t) over it, the earlier
fixations of the human scanpath (white, numbered) and the real fixation t (red); the first panel is the
history-free density. The log-likelihood of each real fixation (bits over uniform) is in its title.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--image", type=int, default=0, help="index in the test split")
    parser.add_argument("--observer", type=int, default=0)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--out", default="docs/scanpath/conditional_densities.png")
    args = parser.parse_args()

    import os

    from attnlab.benchmark import BenchmarkContext
    from attnlab.data.osie import OSIEDataModule
    from attnlab.models.scanpath.source import ScanpathModelSource

    dm = OSIEDataModule(os.environ["ATTNLAB_OSIE_ROOT"], drop_first=True, seed=100)
    dm.setup("test")
    test = dm.splits["test"]
    ctx = BenchmarkContext(test, dm.splits["train"], 24.0, 100, test.scanpaths)
    source = ScanpathModelSource(args.checkpoint, ctx)
    i = args.image
    path = test.scanpaths[i][args.observer]
    image = test.load_image(i)
    h, w = image.shape[:2]
    steps = min(args.steps, len(path.x))
    fig, axes = plt.subplots(1, steps, figsize=(3.2 * steps, 2.8))
    for t, ax in enumerate(np.atleast_1d(axes)):
        log_p = source.conditional_log_density(ctx, i, path.x[:t], path.y[:t])
        p = np.asarray(Image.fromarray(np.exp(log_p).astype(np.float32)).resize((w, h), Image.BILINEAR))
        gh, gw = log_p.shape
        cell = log_p[min(int(path.y[t] / h * gh), gh - 1), min(int(path.x[t] / w * gw), gw - 1)]
        ax.imshow(image)
        ax.imshow(p, cmap="magma", alpha=0.6)
        ax.plot(path.x[:t], path.y[:t], "w-", lw=1)
        for k in range(t):
            ax.text(path.x[k], path.y[k], str(k + 1), color="w", fontsize=7, ha="center", va="center")
        ax.plot(path.x[t], path.y[t], "o", ms=7, mfc="none", mec="red", mew=2)
        ax.set_title(f"t={t + 1}: LL {cell / math.log(2) + math.log2(gh * gw):.2f} bits", fontsize=9)
        ax.axis("off")
    fig.suptitle(
        f"p(next fixation | image, human's earlier fixations): OSIE test image {test.stimuli[i].id}", fontsize=10
    )
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=90)
    print(args.out)


if __name__ == "__main__":
    main()
