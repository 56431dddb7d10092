"""Tiled, lazy, cancellable super-resolution of whole volumes.

- :class:`PredictOptions`: the options of a run (tiling, device, intensities, region, resume),
  validated once;
- :func:`iter_super_resolve`: a generator of :class:`napari_emsr.events.Event` objects (for GUIs
  and progress bars); its ``"start"`` event carries a :class:`PlanSummary`, its ``"slice"`` events
  a :class:`SliceDone`;
- :func:`super_resolve`: runs it to the end and returns the array or the written path;
- :func:`prepare_tasks` / :func:`run_task`: the same work as independent tasks (dask, a cluster);
- :func:`iter_super_resolve_distributed`: those tasks on a dask.distributed cluster (optional extra).
"""

from napari_emsr.predict.api import SliceDone, iter_super_resolve, super_resolve
from napari_emsr.predict.chunks import SliceTask, prepare_tasks, run_task
from napari_emsr.predict.distributed import iter_super_resolve_distributed, super_resolve_distributed
from napari_emsr.predict.engine import DIHEDRAL, Geometry, ModelRunner, OutOfMemoryWarning, predict_block
from napari_emsr.predict.intensity import IntensityMap, IntensityWarning, resolve_intensity
from napari_emsr.predict.options import PredictOptions
from napari_emsr.predict.plan import (
    ClusterInfo,
    PixelSizeWarning,
    Plan,
    PlanSummary,
    TileSizeWarning,
    UntrainedModelWarning,
    make_plan,
)

__all__ = [
    "PredictOptions",
    "PlanSummary",
    "ClusterInfo",
    "SliceDone",
    "iter_super_resolve",
    "super_resolve",
    "SliceTask",
    "prepare_tasks",
    "run_task",
    "iter_super_resolve_distributed",
    "super_resolve_distributed",
    "Geometry",
    "ModelRunner",
    "DIHEDRAL",
    "predict_block",
    "IntensityMap",
    "resolve_intensity",
    "Plan",
    "make_plan",
    "IntensityWarning",
    "PixelSizeWarning",
    "UntrainedModelWarning",
    "TileSizeWarning",
    "OutOfMemoryWarning",
]
