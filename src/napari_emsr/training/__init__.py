"""Training and fine-tuning without clean references (paper sections II-B, II-D, III-B)."""

from napari_emsr.training.pairs import PairError, PairReport, prepare_pair
from napari_emsr.training.trainer import TrainEvent, checkpoint_path, finetune, iter_finetune

__all__ = ["TrainEvent", "iter_finetune", "finetune", "checkpoint_path", "prepare_pair", "PairReport", "PairError"]
