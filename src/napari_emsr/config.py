"""Validated configuration of the EMSR network.

A config is created once, at the boundary (CLI flags, a model file's metadata, widget values), and
validated there with messages a user can act on. Everything downstream trusts it.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, fields
from typing import Any, Mapping

__all__ = ["EMSRConfig", "TrainingConfig", "PRESETS", "ConfigError"]


class ConfigError(ValueError):
    """An EMSR configuration value is missing, of the wrong type or out of range."""


#: training strategies: the paper's four (III-B: acquired pairs, bicubic LR, blur+noise LR, denoised
#: HR) and ``synthetic-em``, LR simulated by a physical EM acquisition model with scale augmentation
#: (``napari_emsr.training.acquisition``); ``axial``: xy slices sampled along one axis the way sections
#: sample z, for isotropic reconstruction (``napari_emsr.isotropic``; needs a scale-1 network)
STRATEGIES = ("real", "synthetic-i", "synthetic-ii", "denoised", "synthetic-em", "fitted", "real+fitted", "axial")
#: the strategies that simulate LR inputs through a degradation fitted to the user's pair
FITTED_STRATEGIES = ("fitted", "real+fitted")
#: how a training run chooses the model it keeps among its validations (TrainingConfig.keep_by)
KEEP_BY = ("ssim+frc", "ssim")

#: the smallest and largest zoom factor a synthetic-em scale augmentation may draw
ZOOM_LIMITS = (0.25, 4.0)

#: Named presets: overrides applied to the defaults (the defaults are the paper's settings).
#: ``paper``: section III-B-1 of the paper (C=64, k=3, m=4, n=1, 16 heads, window 4, MLP ratio 2).
#: ``lite``: about 8x fewer FLOPs, for fine-tuning and predicting on a laptop CPU.
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    "lite": {"channels": 32, "num_blocks": 2, "num_res_blocks": 2, "num_heads": 8},
}


@dataclass(frozen=True)
class EMSRConfig:
    """Hyper-parameters of the EMSR super-resolution network (paper, section II-C).

    The defaults are the paper's configuration. Use :meth:`preset` for a named preset and
    :meth:`from_dict` to read a config stored in a model file (unknown keys are refused).
    """

    #: up-sampling factor s; 1 makes the network an enhancer at the input resolution (III-D-3)
    scale: int = 3
    #: number of image channels in and out (grey EM: 1)
    in_channels: int = 1
    out_channels: int = 1
    #: feature channels C, constant through the network
    channels: int = 64
    #: number of edge-attention basic blocks k
    num_blocks: int = 3
    #: residual blocks m at the start of each basic block
    num_res_blocks: int = 4
    #: residual blocks n in each of the two parallel paths (deep features / LR reconstruction)
    num_path_blocks: int = 1
    #: a-trous wavelet scales J of the multi-scale edges
    wavelet_scales: int = 3
    #: attention heads h of the window self-attention (channels must be divisible by it)
    num_heads: int = 16
    #: window size M of the window self-attention (inputs are padded to multiples of it)
    window_size: int = 4
    #: hidden width of the ViT block's MLP, as a multiple of channels
    mlp_ratio: float = 2.0
    #: 1: the network adds its input to its output (scale 1 only): it learns the correction of an
    #: input already on the output grid, e.g. a volume interpolated to isotropic voxels; 0: the paper's
    global_residual: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            expected = float if f.type in ("float", float) else int
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{f.name} must be a number, got {value!r}")
            if expected is int and not float(value).is_integer():
                raise ConfigError(f"{f.name} must be a whole number, got {value!r}")
            object.__setattr__(self, f.name, expected(value))
        self._check_ranges()

    def _check_ranges(self) -> None:
        limits = {
            "scale": (1, 4),
            "in_channels": (1, 16),
            "out_channels": (1, 16),
            "channels": (4, 1024),
            "num_blocks": (1, 32),
            "num_res_blocks": (0, 64),
            "num_path_blocks": (1, 16),
            "wavelet_scales": (1, 6),
            "num_heads": (1, 256),
            "window_size": (1, 64),
        }
        for name, (low, high) in limits.items():
            value = getattr(self, name)
            if not low <= value <= high:
                raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
        if self.global_residual not in (0, 1):
            raise ConfigError(f"global_residual must be 0 or 1, got {self.global_residual}")
        if self.global_residual and (self.scale != 1 or self.in_channels != self.out_channels):
            raise ConfigError("global_residual needs scale 1 and as many output channels as input channels")
        if not 0.25 <= self.mlp_ratio <= 16:
            raise ConfigError(f"mlp_ratio must be between 0.25 and 16, got {self.mlp_ratio}")
        if self.channels % self.num_heads:
            raise ConfigError(
                f"channels ({self.channels}) must be divisible by num_heads ({self.num_heads}): "
                f"each head gets channels / num_heads features"
            )

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def preset(cls, name: str = "paper", **overrides: Any) -> "EMSRConfig":
        """Return the named preset (see :data:`PRESETS`), with optional overrides, e.g. ``scale=2``."""
        if name not in PRESETS:
            raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
        return cls.from_dict({**PRESETS[name], **overrides})

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "EMSRConfig":
        """Build a config from a mapping; unknown keys are an error (a typo must not pass)."""
        if not isinstance(values, Mapping):
            raise ConfigError(f"a config must be a mapping of names to values, got {type(values).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown config key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(known))}")
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> "EMSRConfig":
        """Parse a config from JSON text, validated (ConfigError if it is not valid)."""
        try:
            values = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"the config is not valid JSON ({exc})") from None
        return cls.from_dict(values)

    def to_dict(self) -> dict[str, Any]:
        """Return the values as a plain (JSON-ready) dict."""
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """Return the values as JSON text (keys sorted)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    def replace(self, **changes: Any) -> "EMSRConfig":
        """Return a copy with some values changed, validated again."""
        return self.from_dict({**self.to_dict(), **changes})

    @property
    def preset_name(self) -> str | None:
        """The preset this config equals (ignoring scale and the global residual), or None for a custom config."""
        for name, overrides in PRESETS.items():
            if self.replace(scale=3, global_residual=0) == EMSRConfig.from_dict(overrides):
                return name
        return None


#: the arithmetic a training run can use (fp16 would need loss scaling; training has none)
TRAINING_PRECISIONS = ("auto", "fp32", "bf16")


def training_precision_of(precision: str) -> str:
    """Return the training precision for an engine precision (auto, fp32, bf16, fp16): fp16 trains in fp32."""
    return "fp32" if precision == "fp16" else precision


@dataclass(frozen=True)
class TrainingConfig:
    """Settings of a training or fine-tuning run (paper section III-B-1 gives the defaults' origin).

    The paper trains for 200k steps with batch 2, Adam at 1e-4 halved every 50k steps, L1 or L2,
    all lambdas 1, augmentation noise and the noisier copy both with sigma in [0, 5] (0..255 scale).
    Defaults here are a short fine-tune; set ``steps`` and ``halve_every`` for a full run.
    """

    #: how LR inputs are obtained: real, synthetic-i, synthetic-ii, denoised, synthetic-em, or through the
    #: degradation fitted to the pair: fitted (only simulated inputs) or real+fitted (a mix)
    strategy: str = "real"
    #: with real+fitted: the share of patches whose input is simulated through the fitted degradation
    fitted_share: float = 0.5
    #: with synthetic-em: the range of the scale augmentation's zoom (log-uniform; > 1 resamples HR patches
    #: to coarser pixels, < 1 to finer, interpolated ones whose finest detail is missing from the target).
    #: None: the documented default range, ``SYNTHETIC_EM_RANGES["zoom"]`` (docs/training.md)
    zoom: tuple[float, float] | None = None
    #: weight of the degradation-consistency term l(D(f(y)), y) on LR patches without HR (the LR volume
    #: outside the HR field), D the fitted degradation; 0 leaves it out (needs a fitted strategy)
    lambda_consistency: float = 0.0
    #: optimisation steps (a run stops at ``steps`` or after ``minutes``, whichever comes first)
    steps: int = 2000
    #: wall-clock budget of this run in minutes (None: no limit)
    minutes: float | None = None
    #: with ``minutes``: use the budget, not only cap the run by it. After a few steps the step time is
    #: measured and ``steps`` (and ``halve_every``, in proportion) are set to what fits in the budget
    budget: bool = False
    #: patches per step
    batch: int = 2
    #: LR patch size in pixels (HR patches are scale times larger)
    patch: int = 48
    #: Adam learning rate at the start
    learning_rate: float = 1e-4
    #: the learning rate halves every this many steps (schedule "step")
    halve_every: int = 50_000
    #: learning-rate schedule: "step" (halved every ``halve_every`` steps, the paper's) or "cosine"
    #: (from ``learning_rate`` down to ``learning_rate * final_lr_fraction`` along a half cosine over
    #: ``steps``; with a budget it follows the planned steps, so the decay ends when the time does)
    schedule: str = "step"
    #: with the cosine schedule: the last step's rate as a share of ``learning_rate``
    final_lr_fraction: float = 0.01
    #: decay of an exponential moving average of the weights (0: none). With one, validation scores
    #: the average, and the best model saved is the average; the checkpoint keeps it for resuming.
    #: Early steps average with less memory (decay min(ema, (1 + step) / (10 + step)))
    ema: float = 0.0
    #: pixel loss l: "l1" or "l2"
    loss: str = "l1"
    #: lambda_1, lambda_2, lambda_3 of eq. 16
    weights: tuple[float, float, float] = (1.0, 1.0, 1.0)
    #: train with the noisier copy y' (the 2nd and 3rd loss terms); False is plain supervised training
    noisier_branch: bool = True
    #: sigma range (0..255 scale) of the augmentation noise added to inputs
    input_noise: tuple[float, float] = (0.0, 5.0)
    #: sigma range (0..255 scale) of the extra noise making y' from y
    noisier_noise: tuple[float, float] = (0.0, 5.0)
    #: validate (and keep the best checkpoint) every this many steps
    val_every: int = 250
    #: which validation is the best, the model kept: "ssim+frc" (the highest SSIM + mean FRC, the
    #: default) or "ssim" (the highest SSIM alone). On a fine-tune the validation SSIM is flat to within
    #: about 0.002 after a few hundred steps, so SSIM alone picks among near-ties by chance while the
    #: FRC still differs (docs/training.md, benchmarks/results/selection_trajectory.json)
    keep_by: str = "ssim+frc"
    #: at most this many held-out slices are used for validation
    val_count: int = 4
    #: validation crops are at most this many LR pixels wide (centred)
    val_crop: int = 128
    #: seed of every random draw (patches, augmentation, noise, initial weights)
    seed: int = 0
    #: how training volumes are drawn: "pixels" (in proportion to their size) or "volumes" (equally,
    #: so that a small data set of another modality is not drowned by a large one)
    balance: str = "pixels"
    #: "auto" (cuda, then mps, then cpu), "cpu", "cuda", "cuda:1", "mps"
    device: str = "auto"
    #: arithmetic of the forward and backward passes: "fp32", or "bf16" autocast (weights, optimiser
    #: and loss stay fp32); bf16 pays on CPUs with AMX-BF16 and on recent GPUs (elsewhere it is
    #: emulated and far slower). "auto" (the default): bf16 where it pays, fp32 elsewhere, decided
    #: when the run starts on its device (a resumed run decides again on its own machine); at equal
    #: steps bf16 and fp32 fine-tunes score alike (docs/training.md)
    precision: str = "auto"
    #: with the axial strategy: xy pixels per z step K (z step / xy pixel size, any number > 1)
    z_factor: float | None = None
    #: with the axial strategy: draw K per patch in [z_factor, z_factor_max] (one model for a range)
    z_factor_max: float | None = None
    #: with the axial strategy: the section profile along z, "box" or "gaussian" (FWHM = thickness)
    section_profile: str = "box"
    #: with the axial strategy: the section thickness as a multiple of the z step
    section_thickness: float = 1.0

    def __post_init__(self) -> None:
        if self.strategy == "axial":
            if self.z_factor is None or not (math.isfinite(self.z_factor) and self.z_factor > 1):
                raise ConfigError(
                    f"the axial strategy needs z_factor > 1 (z step / xy pixel size), got {self.z_factor}"
                )
            if self.z_factor_max is not None and not self.z_factor_max >= self.z_factor:
                raise ConfigError(f"z_factor_max ({self.z_factor_max}) must be at least z_factor ({self.z_factor})")
            if self.section_profile not in ("box", "gaussian"):
                raise ConfigError(f"section_profile must be 'box' or 'gaussian', got {self.section_profile!r}")
            if not 0 < self.section_thickness <= 4:
                raise ConfigError(f"section_thickness must be in (0, 4] z steps, got {self.section_thickness}")
        elif self.z_factor is not None or self.z_factor_max is not None:
            raise ConfigError("z_factor is a setting of the axial strategy (isotropic reconstruction)")
        if self.precision not in TRAINING_PRECISIONS:
            raise ConfigError(f"precision must be 'auto', 'fp32' or 'bf16', got {self.precision!r}")
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        if self.balance not in ("pixels", "volumes"):
            raise ConfigError(f"balance must be 'pixels' or 'volumes', got {self.balance!r}")
        if self.schedule not in ("step", "cosine"):
            raise ConfigError(f"schedule must be 'step' or 'cosine', got {self.schedule!r}")
        if not 0.0 <= self.final_lr_fraction <= 1.0:
            raise ConfigError(f"final_lr_fraction must be between 0 and 1, got {self.final_lr_fraction}")
        if not 0.0 <= self.ema < 1.0:
            raise ConfigError(f"ema must be a decay in [0, 1) (0: no moving average), got {self.ema}")
        if self.loss not in ("l1", "l2"):
            raise ConfigError(f"loss must be 'l1' or 'l2', got {self.loss!r}")
        if self.keep_by not in KEEP_BY:
            raise ConfigError(f"keep_by must be one of {', '.join(KEEP_BY)}, got {self.keep_by!r}")
        for name in ("steps", "batch", "patch", "halve_every", "val_every", "val_count", "val_crop"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive whole number, got {value!r}")
        if self.patch < 8:
            raise ConfigError(f"patch must be at least 8 LR pixels, got {self.patch}")
        if not 0.0 <= self.fitted_share <= 1.0:
            raise ConfigError(f"fitted_share must be between 0 and 1, got {self.fitted_share}")
        if self.zoom is not None:
            if self.strategy != "synthetic-em":
                raise ConfigError(
                    "zoom is the scale augmentation of the synthetic-em strategy: use that strategy or leave zoom unset"
                )
            try:
                low, high = (float(v) for v in self.zoom)
            except (TypeError, ValueError):  # not two numbers
                low = high = math.nan
            least, most = ZOOM_LIMITS
            if not (math.isfinite(low) and math.isfinite(high) and least <= low <= high <= most):
                raise ConfigError(
                    f"zoom must be a low, high pair with {least:g} <= low <= high <= {most:g}, got {self.zoom!r}"
                )
            object.__setattr__(self, "zoom", (low, high))
        if not (self.lambda_consistency >= 0 and math.isfinite(self.lambda_consistency)):
            raise ConfigError(f"lambda_consistency must be a finite number >= 0, got {self.lambda_consistency}")
        if self.lambda_consistency > 0 and self.strategy not in FITTED_STRATEGIES:
            raise ConfigError(
                "lambda_consistency needs the degradation fitted to the pair: use the fitted or real+fitted strategy"
            )
        if self.minutes is not None and not self.minutes > 0:
            raise ConfigError(f"minutes must be positive, got {self.minutes}")
        if self.budget and self.minutes is None:
            raise ConfigError("budget needs minutes: the time the run may use")
        if not 0 < self.learning_rate < 1:
            raise ConfigError(f"learning_rate must be in (0, 1), got {self.learning_rate}")
        for name in ("weights", "input_noise", "noisier_noise"):
            value = tuple(float(v) for v in getattr(self, name))
            if any(v < 0 for v in value) or (name != "weights" and (len(value) != 2 or value[0] > value[1])):
                raise ConfigError(f"{name} must be non-negative (and a low, high pair for noise), got {value}")
            object.__setattr__(self, name, value)
        if len(self.weights) != 3 or self.weights[0] <= 0:
            raise ConfigError(f"weights must be three lambdas with lambda_1 > 0, got {self.weights}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TrainingConfig":
        """Build a training config from a mapping; unknown keys are a ConfigError."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown training setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Return the values as a plain (JSON-ready) dict."""
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "TrainingConfig":
        """Return a copy with some values changed, validated again."""
        return self.from_dict({**self.to_dict(), **changes})
