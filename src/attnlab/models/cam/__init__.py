"""Class activation maps (grad-cam) of an ImageNet classifier as attention sources for the benchmark.

``attention=cam:<method>`` / ``cam:<method>+prior`` (:mod:`attnlab.models.cam.source`), with the
settings :class:`CamSettings`. Importing this package loads neither grad-cam nor a model.
"""

from attnlab.models.cam.settings import CamSettings

__all__ = ["CamSettings"]
