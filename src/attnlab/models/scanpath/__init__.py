"""A learned scanpath model (the DeepGaze III pattern) trained on human scanpaths: ``model=scanpath_deepgaze``.

Modules: ``net`` (:class:`ScanpathNet`), ``module`` (:class:`ScanpathModule`, Lightning), ``source`` (the
benchmark sources ``scanpath:<ckpt>`` and ``scanpath_free:<ckpt>``).
"""

from attnlab.models.scanpath.module import ScanpathModule
from attnlab.models.scanpath.net import ScanpathNet

__all__ = ["ScanpathModule", "ScanpathNet"]
