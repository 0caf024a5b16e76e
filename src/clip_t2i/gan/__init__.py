"""clip_t2i.gan: a small CLIP-aided GAN (GALIP-style generator) with GALIP and SCAD discriminators/losses.

Public API (imported lazily so ``import clip_t2i.gan`` stays light):

* :func:`sample` — images for prompts from a checkpoint (zoo name, file, run folder);
* :func:`load_gan` / :func:`save_gan` — self-describing safetensors checkpoints;
* :func:`train_gan` + :class:`GanTrainConfig` — the training loop; :func:`get_variant` / :func:`list_variants`
  — presets ``galip``, ``scad``, ``scad-mi``, ``scad-dd`` and ablations;
* networks (:class:`Generator`, :class:`Discriminator`) and losses (:class:`GanLoss`) for research code.
"""

from __future__ import annotations

# the function shadows the submodule's name, so ``clip_t2i.gan.sample(...)`` is the sampling API
from clip_t2i.gan.sample import sample as sample
from clip_t2i.utils.lazy import lazy_getattr

_WHERE = {
    "Samples": "sample",
    "generate": "sample",
    "load_gan": "model",
    "save_gan": "model",
    "GanModel": "model",
    "train_gan": "train",
    "GanTrainConfig": "train",
    "get_variant": "variants",
    "list_variants": "variants",
    "GanConfig": "variants",
    "Generator": "networks",
    "Discriminator": "networks",
    "GeneratorConfig": "networks",
    "DiscriminatorConfig": "networks",
    "GanLoss": "losses",
    "LossConfig": "losses",
    "GanEvaluator": "evaluate",
    "EvalSpec": "evaluate",
}


__getattr__ = lazy_getattr(__name__, _WHERE, globals())


__all__ = sorted([*_WHERE, "sample"])
