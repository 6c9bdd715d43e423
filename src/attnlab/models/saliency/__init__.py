"""Factorised deep saliency models (Chen, Jiang & Zhao, NeurIPS 2023): SALICON, DINet, TranSalNet.

Each network's last feature map is factorised into K bases with independent sigmoid
probabilities; phase 1 trains through the reconstruction, phase 2 trains only a conv over the
probability maps. See :mod:`.net` for the shared structure.
"""

from attnlab.models.saliency.backbones import EfficientNetLite0Backbone, ResNet50Backbone, build_backbone
from attnlab.models.saliency.dinet import DilatedInception, DINet
from attnlab.models.saliency.factorization import Bases
from attnlab.models.saliency.loss import SaliencyLoss
from attnlab.models.saliency.module import (
    SaliencyModule,
    centre_bias_prior,
    load_phase1_weights,
    load_saliency_model,
    lr_factor,
)
from attnlab.models.saliency.net import FactorizedSaliencyNet
from attnlab.models.saliency.salicon import SALICONNet

# registers ``attention=saliency:<checkpoint>`` with ``python -m attnlab.benchmark``
from attnlab.models.saliency.source import SaliencyModelSource
from attnlab.models.saliency.transalnet import TokenTransformer, TranSalNet

__all__ = [
    "Bases",
    "DINet",
    "DilatedInception",
    "EfficientNetLite0Backbone",
    "FactorizedSaliencyNet",
    "ResNet50Backbone",
    "SALICONNet",
    "SaliencyLoss",
    "SaliencyModelSource",
    "SaliencyModule",
    "TokenTransformer",
    "TranSalNet",
    "build_backbone",
    "centre_bias_prior",
    "load_phase1_weights",
    "load_saliency_model",
    "lr_factor",
]
