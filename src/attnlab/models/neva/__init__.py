"""NeVA: task-driven scanpaths from a frozen task model and a differentiable foveation layer.

Pieces: :class:`GaussianBlur` (peripheral blur), :class:`Foveation` (window + memory, (x, y) in
[−1, 1]), :func:`search_scanpath` (per-fixation sign-gradient search), task adapters
(:class:`ClassifierTask`, :class:`ReconstructionTask`, :class:`ClipTask`), the autoencoder of the
reconstruction task, and :class:`NevaModule` (LightningModule whose ``predict_step`` returns scanpaths).
"""

from attnlab.models.neva.autoencoder import AutoencoderModule, ConvAutoencoder, load_autoencoder
from attnlab.models.neva.blur import GaussianBlur, gaussian_kernel1d
from attnlab.models.neva.foveation import Foveation, from_pixels, pixel_centres, position_bounds, to_pixels
from attnlab.models.neva.module import NevaModule, split_batch
from attnlab.models.neva.search import START_POSITIONS, SearchConfig, SearchResult, search_scanpath
from attnlab.models.neva.tasks import (
    ClassifierTask,
    ClipTask,
    NevaTask,
    ReconstructionTask,
    efficientnet_lite0_classifier,
    freeze,
    load_open_clip,
)

__all__ = [
    "AutoencoderModule",
    "ClassifierTask",
    "ClipTask",
    "ConvAutoencoder",
    "Foveation",
    "GaussianBlur",
    "NevaModule",
    "NevaTask",
    "ReconstructionTask",
    "START_POSITIONS",
    "SearchResult",
    "SearchConfig",
    "efficientnet_lite0_classifier",
    "freeze",
    "from_pixels",
    "gaussian_kernel1d",
    "load_autoencoder",
    "load_open_clip",
    "pixel_centres",
    "position_bounds",
    "search_scanpath",
    "split_batch",
    "to_pixels",
]
