"""Object-based attention through internal gating: network, Lightning module, paper checkpoints."""

from attnlab.models.gating.module import GatingModule, run_glimpses, select_targets
from attnlab.models.gating.net import GatingNet, GlimpseOutput, StepOutput

__all__ = ["GatingNet", "GatingModule", "GlimpseOutput", "StepOutput", "run_glimpses", "select_targets"]
