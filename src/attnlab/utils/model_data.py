"""Which datasets each model config trains on, so that ``train model=X data=Y`` (or a checkpoint
without a stored config) that cannot work is one line before anything starts."""

from __future__ import annotations

from typing import Any

__all__ = ["MODEL_DATA", "model_data_mismatch"]

# Which datasets each model config trains on (the names of conf/model and conf/data). A model or a
# dataset not named here (your own config) is not checked.
_FIXATION_DATA = {"osie", "mit1003", "salicon_fixations", "cat2000", "toronto", "fixation_folder"}
MODEL_DATA: dict[str, set[str]] = {
    "gating_mnist": {"multimnist"},
    "gating_coco": {"coco_objects"},
    "saliency_dinet": _FIXATION_DATA | {"salicon"},
    "saliency_salicon": _FIXATION_DATA | {"salicon"},
    "saliency_transalnet": _FIXATION_DATA | {"salicon"},
    "autoencoder": {"images"} | _FIXATION_DATA,  # any photos: a fixation dataset's train split too
    "scanpath_deepgaze": {"osie_steps"},
}
_KNOWN_DATA = set().union(*MODEL_DATA.values()) | {"images"}


def model_data_mismatch(choices: Any) -> str | None:
    """Why the ``model``/``data`` options chosen cannot go together, or None (also for unknown names)."""
    if not choices:
        return None
    model, data = choices.get("model"), choices.get("data")
    allowed = MODEL_DATA.get(str(model))
    if allowed is not None and data in _KNOWN_DATA and data not in allowed:
        return (
            f"model={model} does not train on data={data}; choose data={' or data='.join(sorted(allowed))} "
            f"(or a model for {data})"
        )
    return None
