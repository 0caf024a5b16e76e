"""clip_t2i.robust: adversarial attacks, robust fine-tuning (CLIPAG / TeCoA / FARE) and PAG probes.

Imported lazily, so ``clip_t2i.robust.config`` (the CLI's defaults) does not pull in torch.
"""

from __future__ import annotations

from clip_t2i.utils.lazy import lazy_getattr

_WHERE = {
    "APGD": "attacks",
    "PGD": "attacks",
    "ZeroShotClassifier": "attacks",
    "apgd": "attacks",
    "apgd_checkpoints": "attacks",
    "clean_accuracy": "attacks",
    "dlr_loss": "attacks",
    "eval_mode": "attacks",
    "make_generator": "attacks",
    "pgd": "attacks",
    "project": "attacks",
    "random_init": "attacks",
    "robust_accuracy": "attacks",
    "RobustTrainConfig": "config",
    "robustify": "finetune",
}

__getattr__ = lazy_getattr(__name__, _WHERE, globals())

__all__ = sorted(_WHERE)
