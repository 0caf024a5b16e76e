"""The guidance loop's settings, :class:`GuidanceConfig`, in a module without torch (presets read it at start-up)."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from clip_t2i.guidance.augment import ViewSettings

LOSS_KINDS = ("cosine", "spherical")  # = clip_t2i.guidance.losses.LOSS_KINDS (a test checks they agree)
REJECTION_MODES = ("worst", "best")  # = clip_t2i.guidance.losses.REJECTION_MODES
OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("constant", "cosine", "linear")
PROJECTIONS = ("clamp", "dynamic")


@dataclass(frozen=True)
class GuidanceConfig:
    """Every knob of the guidance loop (defaults = the CLIPAG T2I recipe)."""

    steps: int = 100  # optimiser steps
    optimizer: str = "adamw"  # adamw | adam | sgd
    lr: float = 0.0175  # peak lr (grad_normalize + sgd: L2 step length at the CLIP's input side S, × √(H·W)/S)
    weight_decay: float = 0.01  # AdamW decoupled decay / L2 for adam and sgd
    momentum: float = 0.0  # sgd only
    schedule: str = "constant"  # constant | cosine | linear (decay to lr * lr_final)
    warmup_steps: int = 0  # linear warm-up steps
    lr_final: float = 0.0  # final lr as a fraction of lr (cosine / linear)
    grad_clip: float = 0.001  # max L2 norm of each image's gradient; 0 = off
    grad_normalize: bool = (
        False  # divide each image's gradient by its L2 norm (L2-normalised steps, scaled by √(H·W)/S)
    )
    loss: str = "cosine"  # cosine (1 - cos) | spherical (2 arcsin(|a-b|/2)^2)
    global_views: int = 32  # augmented whole-image views per image and step
    patch_views: int = 32  # augmented crop views per image and step
    global_weight: float = 1.0
    patch_weight: float = 5.0
    patch_fraction: float = 128 / 224  # crop side / image side
    patch_rejection: float = 0.0  # fraction of patch views dropped per image (see losses.reject_views)
    patch_rejection_mode: str = "worst"  # worst | best (the CLIPAG notebook's)
    colour: bool = True  # DiffAugment brightness / saturation / contrast
    translation: float = 0.125  # max shift, fraction of the side; 0 = off
    translation_tokens: float = 0.0  # > 0: max shift = this many token sides of the guiding ViT (replaces translation)
    resize: tuple[float, float] | None = (0.8, 1.2)  # zoom range; None = off
    cutout: float = 0.5  # cutout square side, fraction of the side; 0 = off
    perspective: float = 0.0  # perspective distortion scale; 0 = off
    noise_std: float = 0.01  # per-view Gaussian noise (patch views share one draw per image)
    step_noise: float = 0.0  # std of Gaussian noise added to the renderer's parameters after each step, × √(lr factor)
    step_noise_side: int = 0  # > 0: that noise is drawn on a side×side grid and upsampled bilinearly (0 = full res)
    tv_weight: float = 0.0  # weight of the total-variation prior (losses.total_variation) on the image; 0 = off
    projection: str = "dynamic"  # clamp (to [0, 1]) | dynamic (thresholding at threshold_quantile)
    threshold_quantile: float = 0.95
    keep_best: bool = True  # return the image with the lowest global loss seen, else the last one
    snapshot_every: int = 10  # keep the rendered image every k steps (0 = never)

    def view_settings(self) -> ViewSettings:
        from clip_t2i.guidance.augment import ViewSettings

        return ViewSettings(
            colour=self.colour,
            translation=self.translation,
            resize=self.resize,
            cutout=self.cutout,
            perspective=self.perspective,
            noise_std=self.noise_std,
            patch_fraction=self.patch_fraction,
        )

    def validate(self) -> GuidanceConfig:
        """Raise ``ValueError`` naming the bad field; return self."""
        checks: list[tuple[bool, str]] = [
            (self.steps >= 1, f"steps must be >= 1, got {self.steps}"),
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}"),
            (self.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}, got {self.schedule!r}"),
            (self.loss in LOSS_KINDS, f"loss must be one of {LOSS_KINDS}, got {self.loss!r}"),
            (self.projection in PROJECTIONS, f"projection must be one of {PROJECTIONS}, got {self.projection!r}"),
            (
                self.patch_rejection_mode in REJECTION_MODES,
                f"patch_rejection_mode must be one of {REJECTION_MODES}, got {self.patch_rejection_mode!r}",
            ),
            (self.lr > 0 and math.isfinite(self.lr), f"lr must be a positive number, got {self.lr}"),
            (self.global_views >= 1, f"global_views must be >= 1, got {self.global_views}"),
            (self.patch_views >= 0, f"patch_views must be >= 0, got {self.patch_views}"),
            (0 < self.patch_fraction <= 1, f"patch_fraction must lie in (0, 1], got {self.patch_fraction}"),
            (0 <= self.patch_rejection < 1, f"patch_rejection must lie in [0, 1), got {self.patch_rejection}"),
            (0 < self.threshold_quantile <= 1, f"threshold_quantile must lie in (0, 1], got {self.threshold_quantile}"),
            (self.grad_clip >= 0, f"grad_clip must be >= 0, got {self.grad_clip}"),
            (
                0 <= self.translation_tokens and math.isfinite(self.translation_tokens),
                f"translation_tokens must be a number >= 0, got {self.translation_tokens}",
            ),
            (
                self.tv_weight >= 0 and math.isfinite(self.tv_weight),
                f"tv_weight must be a number >= 0, got {self.tv_weight}",
            ),
            (
                self.step_noise >= 0 and math.isfinite(self.step_noise) and self.step_noise_side >= 0,
                f"step_noise and step_noise_side must be >= 0, got {self.step_noise}, {self.step_noise_side}",
            ),
            (self.warmup_steps >= 0 and self.snapshot_every >= 0, "warmup_steps and snapshot_every must be >= 0"),
            (
                0 <= self.cutout < 1 and 0 <= self.translation < 1 and 0 <= self.perspective < 1,
                "cutout, translation and perspective must lie in [0, 1)",
            ),
            (
                self.resize is None or (len(self.resize) == 2 and 0 < self.resize[0] <= self.resize[1]),
                f"resize must be null or [lo, hi] with 0 < lo <= hi, got {self.resize}",
            ),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)
        return self

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]
