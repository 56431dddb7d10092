"""Training and fine-tuning without clean references (paper sections II-B, II-D, III-B).

:func:`iter_finetune` trains on prepared volumes; :func:`iter_finetune_pair` fine-tunes on an LR
volume and an HR field inside it as acquired (what ``emsr finetune`` and the Fine-tune panel run),
and :func:`iter_locate` only finds that field. All three yield :class:`napari_emsr.events.Event` s.
"""

from napari_emsr.training.finetune_pair import FineTuneJob, PairSpec, iter_finetune_pair, iter_locate
from napari_emsr.training.pairs import PairError, PairReport, prepare_pair
from napari_emsr.training.trainer import (
    StepStats,
    TrainResult,
    Validation,
    checkpoint_path,
    finetune,
    iter_finetune,
)

__all__ = [
    "iter_finetune",
    "finetune",
    "checkpoint_path",
    "StepStats",
    "Validation",
    "TrainResult",
    "prepare_pair",
    "PairReport",
    "PairError",
    "PairSpec",
    "FineTuneJob",
    "iter_finetune_pair",
    "iter_locate",
]
