"""Inference: tiled, overlap-blended segmentation of images and volumes, streamed to disk.

:func:`run_segment` segments a batch of files (one :class:`FileResult` each); :func:`segment_file`,
:func:`segment_array` and :func:`segment_block` work on one file, one in-memory image, one block.
Nothing here imports the training or export packages: models come from :mod:`pointseg_cli.model`.
"""

from __future__ import annotations

from pointseg_cli.infer.batch import FileResult, PredictorCache, SegmentBatchResult, SegmentConfig, run_segment
from pointseg_cli.infer.predictors import Predictor, make_predictor
from pointseg_cli.infer.segment import SegmentOptions, segment_array, segment_block, segment_file

__all__ = [
    "FileResult",
    "Predictor",
    "PredictorCache",
    "SegmentBatchResult",
    "SegmentConfig",
    "SegmentOptions",
    "make_predictor",
    "run_segment",
    "segment_array",
    "segment_block",
    "segment_file",
]
