"""Task adapters: a frozen task model τ with its target and per-sample criterion.

Every task takes images in [0, 1] (B×3×H×W, what the foveation layer blurs) and does its own input
normalisation. ``target(images, labels)`` is computed once on the clean images; ``loss(images,
target)`` returns one loss per sample, which the scanpath search minimises over the fixation.

- :class:`ClassifierTask`: any classifier; cross-entropy to the clean prediction (default) or a label.
- :class:`ReconstructionTask`: an autoencoder; mean squared error to the clean image.
- :class:`ClipTask`: an open_clip image encoder; 1 − cosine to a prompt's text embedding or to the
  clean image's embedding.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.models.neva.autoencoder import load_autoencoder
from attnlab.models.pretrained import efficientnet_lite0, imagenet_class_name
from attnlab.utils.config import NonNegativeInt, UserError, check_arguments

log = logging.getLogger(__name__)

__all__ = [
    "NevaTask",
    "ClassifierTask",
    "ReconstructionTask",
    "ClipTask",
    "freeze",
    "efficientnet_lite0_classifier",
    "load_open_clip",
]


def freeze(module: nn.Module) -> nn.Module:
    """Eval mode and no parameter gradients: gradients flow only to the fixation."""
    module.eval()
    for param in module.parameters():
        param.requires_grad_(False)
    return module


class NevaTask(nn.Module):
    """Base class: a frozen model, a target and a per-sample loss. Subclasses set ``self.model``."""

    model: nn.Module

    def train(self, mode: bool = True) -> "NevaTask":
        # the task model stays in eval mode whatever the wrapping LightningModule does
        super().train(mode)
        if hasattr(self, "model"):
            self.model.eval()
        return self

    def forward(self, images: Tensor) -> Tensor:
        """The task model's output for images in [0, 1]."""
        raise NotImplementedError

    def target(self, images: Tensor, labels: Tensor | None = None) -> Tensor:
        """What the perceived image should produce, from the clean images (no gradient)."""
        raise NotImplementedError

    def criterion(self, output: Tensor, target: Tensor) -> Tensor:
        """Per-sample loss B from the model output and the target."""
        raise NotImplementedError

    def loss(self, images: Tensor, target: Tensor) -> Tensor:
        """Per-sample loss B of the (perceived) images."""
        return self.criterion(self(images), target)

    def describe_target(self, target: Tensor) -> list[Any]:
        """A JSON-able description of each sample's target (for the per-image output files)."""
        return [None] * len(target)


def efficientnet_lite0_classifier(pretrained: bool = True) -> nn.Module:
    """The default classifier: EfficientNet-Lite0 with its ImageNet weights (offline)."""

    return efficientnet_lite0(pretrained=pretrained)


class ClassifierTask(NevaTask):
    """Classification: cross-entropy of the perceived image's logits to a target class.

    Args:
        model: a classifier B×3×H×W (normalised) → B×K logits.
        mean, std: input normalisation (EfficientNet-Lite0: 0.5 and 0.5).
        target: ``prediction`` (the model's top-1 on the clean image) or ``label`` (the dataset's
            label, else ``label`` below).
        label: a fixed class index used with ``target=label`` when the data has no labels.
    """

    def __init__(
        self,
        model: nn.Module,
        mean: Sequence[float] = (0.5, 0.5, 0.5),
        std: Sequence[float] = (0.5, 0.5, 0.5),
        target: Literal["prediction", "label"] = "prediction",
        label: NonNegativeInt | None = None,
    ) -> None:
        super().__init__()
        check_arguments(type(self), {"target": target})
        self.model = freeze(model)
        self.target_kind = target
        self.label = label
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, images: Tensor) -> Tensor:
        return self.model((images - self.mean) / self.std)

    @torch.no_grad()
    def target(self, images: Tensor, labels: Tensor | None = None) -> Tensor:
        if self.target_kind == "prediction":
            return self(images).float().argmax(1)
        if labels is None:
            labels = torch.full((len(images),), -1, dtype=torch.long, device=images.device)
        labels = labels.to(images.device).long()
        if self.label is not None:
            labels = torch.where(labels < 0, torch.full_like(labels, int(self.label)), labels)
        if (labels < 0).any():
            raise UserError(
                "classifier target=label but some images have no label; set model.task.label=<class "
                "index> or use target=prediction"
            )
        return labels

    def criterion(self, output: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(output.float(), target, reduction="none")

    def describe_target(self, target: Tensor) -> list[Any]:
        if getattr(self.model, "num_classes", None) == 1000:
            return [{"class": int(c), "name": imagenet_class_name(int(c))} for c in target]
        return [{"class": int(c)} for c in target]


class ReconstructionTask(NevaTask):
    """Reconstruction: MSE per sample between the autoencoder's output and the clean image.

    Args:
        model: an autoencoder B×C×H×W → B×C×H×W on images in [0, 1], or None with ``checkpoint``.
        checkpoint: a checkpoint of ``python -m attnlab.train model=autoencoder`` to load the model from.
    """

    def __init__(self, model: nn.Module | None = None, checkpoint: str | None = None) -> None:
        super().__init__()
        if model is not None and checkpoint:
            raise UserError(
                f"model.task: a reconstruction task takes model= or checkpoint={checkpoint}, not both "
                "(replace the whole task node: '~model.task' '+model.task={_target_: ..., checkpoint: ...}')"
            )
        if model is None:
            if not checkpoint:
                raise UserError(
                    "neva_reconstruction needs a trained autoencoder: train one with `python -m attnlab.train "
                    "model=autoencoder data=images`, then pass model.task.checkpoint=<run folder>/checkpoints/last.ckpt"
                )

            model = load_autoencoder(checkpoint)
        self.model = freeze(model)

    def forward(self, images: Tensor) -> Tensor:
        return self.model(images)

    @torch.no_grad()
    def target(self, images: Tensor, labels: Tensor | None = None) -> Tensor:
        return images.detach()

    def criterion(self, output: Tensor, target: Tensor) -> Tensor:
        return (output.float() - target.float()).pow(2).flatten(1).mean(1)


# --- CLIP -------------------------------------------------------------------------------------

_OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
_OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def _cached_open_clip_weights(model_name: str, tag: str, cache_dir: str | None) -> str | None:
    """A local file holding ``model_name``/``tag`` weights, if open_clip already downloaded it; no network."""
    import open_clip

    cfg = open_clip.get_pretrained_cfg(model_name, tag)
    if not cfg:
        return None
    if cfg.get("file"):
        return cfg["file"] if Path(cfg["file"]).is_file() else None
    hub = cfg.get("hf_hub", "")
    if hub:
        from huggingface_hub import try_to_load_from_cache

        repo_id, filename = os.path.split(hub)
        names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        for name in names:
            found = try_to_load_from_cache(repo_id, name, cache_dir=cache_dir)
            if isinstance(found, str) and Path(found).is_file():
                return found
    url = cfg.get("url", "")
    if url:
        candidate = Path(cache_dir or os.path.expanduser("~/.cache/clip")) / os.path.basename(url)
        if candidate.is_file():
            return str(candidate)
    return None


def load_open_clip(
    model_name: str = "ViT-B-32",
    weights: str | None = None,
    pretrained_tag: str | None = "openai",
    cache_dir: str | None = None,
    model_cfg: dict | None = None,
) -> tuple[nn.Module, Any]:
    """An open_clip model and its tokenizer, strictly from local files.

    Args:
        model_name: an open_clip architecture (``open_clip.list_models()``).
        weights: a local checkpoint file; ``random`` for random weights (tests, debugging);
            None: ``pretrained_tag`` from the local open_clip / Hugging Face cache.
        pretrained_tag: which published weights to look for in the cache (``openai``, ``laion2b_s34b_b79k``, ...).
        cache_dir: the cache to search (default: open_clip's defaults).
        model_cfg: build ``open_clip.CLIP(**model_cfg)`` instead of a named architecture (e.g. a tiny model).
    """
    import open_clip

    if weights not in (None, "random") and not Path(str(weights)).expanduser().is_file():
        raise UserError(
            f"CLIP weights file not found: {weights} (model.task.weights must be an existing file or 'random')"
        )
    if weights is None:
        weights = _cached_open_clip_weights(model_name, pretrained_tag or "", cache_dir)
        if weights is None:
            hub = (open_clip.get_pretrained_cfg(model_name, pretrained_tag or "") or {}).get("hf_hub", "")
            raise UserError(
                f"no local CLIP weights for {model_name}/{pretrained_tag}: download them once "
                f"(e.g. huggingface-cli download {hub.rstrip('/') or '<repo>'}) into the Hugging Face cache, "
                f"or put a checkpoint file anywhere and set model.task.weights=/path/to/file"
            )
    architecture = "model.task.model_cfg" if model_cfg is not None else model_name
    try:
        if model_cfg is not None:
            model = open_clip.CLIP(**model_cfg)
            if weights != "random":
                open_clip.load_checkpoint(model, str(Path(str(weights)).expanduser()))
            context = int(model_cfg.get("text_cfg", {}).get("context_length", 77))
            tokenizer = open_clip.SimpleTokenizer(context_length=context)
        else:
            if weights == "random":
                model = open_clip.create_model(model_name, pretrained=None)
            else:
                model = open_clip.create_model(model_name, pretrained=str(Path(str(weights)).expanduser()))
            tokenizer = open_clip.get_tokenizer(model_name)
    except Exception as ex:  # another architecture's state dict, or not a checkpoint at all
        if weights == "random":
            raise
        reason = " ".join(f"{type(ex).__name__}: {ex}".split())
        raise UserError(
            f"CLIP weights file {weights} is not an open_clip checkpoint of {architecture} "
            f"({reason[:160]}{'...' if len(reason) > 160 else ''}); set model.task.model_name to its architecture"
        ) from None
    if weights == "random":
        log.warning("CLIP task uses RANDOM weights (model.task.weights=random): scanpaths are meaningless")
    return model, tokenizer


class ClipTask(NevaTask):
    """CLIP: 1 − cosine similarity between the perceived image's embedding and a target embedding.

    Args:
        model_name, weights, pretrained_tag, cache_dir, model_cfg: see :func:`load_open_clip`.
        prompt: a caption; the target is its text embedding. None: the clean image's embedding.
        model: an already built open_clip model (overrides the loading arguments).
        tokenizer: its tokenizer (needed with ``model`` and a prompt).
    """

    def __init__(
        self,
        model_name: str = "ViT-B-32",
        weights: str | None = None,
        pretrained_tag: str | None = "openai",
        cache_dir: str | None = None,
        model_cfg: dict | None = None,
        prompt: str | None = None,
        model: nn.Module | None = None,
        tokenizer: Any = None,
    ) -> None:
        super().__init__()
        if model is None:
            model, tokenizer = load_open_clip(model_name, weights, pretrained_tag, cache_dir, model_cfg)
        self.model = freeze(model)
        self.tokenizer = tokenizer
        self.prompt = prompt
        visual = getattr(model, "visual", None)
        mean = getattr(visual, "image_mean", None) or _OPENAI_MEAN
        std = getattr(visual, "image_std", None) or _OPENAI_STD
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, images: Tensor) -> Tensor:
        return self.model.encode_image((images - self.mean) / self.std)

    @torch.no_grad()
    def target(self, images: Tensor, labels: Tensor | None = None) -> Tensor:
        if self.prompt is None:
            return F.normalize(self(images).float(), dim=-1)
        if self.tokenizer is None:
            raise UserError("CLIP task with a prompt needs a tokenizer")
        tokens = self.tokenizer([self.prompt]).to(images.device)
        text = F.normalize(self.model.encode_text(tokens).float(), dim=-1)
        return text.expand(len(images), -1)

    def criterion(self, output: Tensor, target: Tensor) -> Tensor:
        return 1 - F.cosine_similarity(output.float(), target, dim=-1)

    def describe_target(self, target: Tensor) -> list[Any]:
        kind = {"prompt": self.prompt} if self.prompt is not None else {"clean_image_embedding": True}
        return [kind] * len(target)
