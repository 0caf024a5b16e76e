"""clip_t2i.robust."""

from clip_t2i.robust.attacks import (
    APGD,
    PGD,
    ZeroShotClassifier,
    apgd,
    apgd_checkpoints,
    clean_accuracy,
    dlr_loss,
    eval_mode,
    pgd,
    project,
    random_init,
    robust_accuracy,
)

__all__ = [
    "APGD",
    "PGD",
    "ZeroShotClassifier",
    "apgd",
    "apgd_checkpoints",
    "clean_accuracy",
    "dlr_loss",
    "eval_mode",
    "pgd",
    "project",
    "random_init",
    "robust_accuracy",
]
