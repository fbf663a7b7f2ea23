"""Blending on the model's device: tile outputs stay where the model wrote them.

On a GPU the host side of sliding-window inference can become the bottleneck: every tile's
logits (``K+1`` float32 values per voxel, computed again in every overlap) would cross the bus and
be weighted and summed by the CPU. :class:`DeviceBlender` keeps the blend ring buffer as a torch
tensor on the model's device; the predictor writes each batch's outputs straight into device
memory (onnxruntime IO binding, see :meth:`OrtPredictor.predict_device`), the weighting and
summing run there, and only finished rows leave the device — one byte per voxel for the class
ids, plus the optional probabilities, logits or centre map.

The arithmetic is the host blender's (:class:`pointseg_cli.infer.stream._Blender`): same windows,
same weights, same ring, argmax of the un-normalised sums. Labels agree with the host path except
where two classes tie to rounding (different summation order on the device).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from pointseg_cli.infer.tiling import TileGrid

log = logging.getLogger(__name__)

#: Finished rows turned into outputs at a time (bounds the device memory of ``finish``).
FINISH_PLANES = 4


def torch_device_for(predictor: Any) -> str | None:
    """The torch device a predictor can leave its outputs on, or None (host blending).

    ``cuda`` for an onnxruntime session on the CUDA provider or a PyTorch predictor on a GPU;
    None otherwise (on the CPU the host blender is as fast and needs no torch import).
    """
    if not hasattr(predictor, "predict_device"):
        return None
    dev = getattr(predictor, "device", None)
    if getattr(dev, "type", None) == "cuda":  # a PyTorch model: its own device
        return str(dev)
    if not getattr(predictor, "on_cuda", False):
        return None
    import torch

    if not torch.cuda.is_available():  # onnxruntime-gpu beside a CPU-only torch build
        log.info("torch cannot use CUDA here: tile outputs are blended on the host")
        return None
    return "cuda:0"  # onnxruntime's CUDA provider runs on device 0 (of the visible ones)


class DeviceBlender:
    """Ring buffer of blend-weighted outputs, one tile deep along axis 0, as a torch tensor.

    Parameters
    ----------
    plan : _Blender
        The host blender of the same grid, blend and trim: its windows, cached tile weights, the
        weight sums along axis 0 and the inverse in-plane weight sum are reused (moved to the
        device once).
    n_total : int
        Channels accumulated: the logits and, when blended too, the centre map as the last one.
    device : str
        A torch device (``"cuda"``; ``"cpu"`` runs the same code on the host, for tests).
    """

    def __init__(self, plan: Any, n_total: int, device: str) -> None:
        import torch

        self._torch = torch
        self.plan = plan
        self.grid: TileGrid = plan.grid
        self.t0 = plan.t0
        self.device = torch.device(device)
        self.acc = torch.zeros((n_total, self.t0, *self.grid.padded_shape[1:]), dtype=torch.float32,
                               device=self.device)
        self.inv_inplane = torch.from_numpy(plan.inv_inplane).to(self.device)
        self.wsum0 = np.asarray(plan.wsum0, dtype=np.float32)
        self._weights: dict[int, Any] = {}

    def tile_weight(self, index: tuple[int, ...]) -> Any:
        w = self.plan.tile_weight(index)  # cached on the host by window kind; cache the device copy by identity
        t = self._weights.get(id(w))
        if t is None:
            t = self._weights[id(w)] = self._torch.from_numpy(w).to(self.device)
        return t

    def add_tiles(self, start0: int, index0: int, group: list, outputs: Any) -> None:
        """Weight and add one batch ``outputs`` ``(N, n_total, t0, *tile[1:])`` (any float dtype, on the device)."""
        p = start0 % self.t0
        head = self.t0 - p
        for (idx, inner), out in zip(group, outputs, strict=True):
            weighted = out.float() * self.tile_weight((index0, *idx))
            self.acc[(slice(None), slice(p, self.t0), *inner)] += weighted[:, :head]
            if p:
                self.acc[(slice(None), slice(0, p), *inner)] += weighted[:, head:]
        if self.device.type == "cuda":
            # The batch's memory goes back to torch's cache when the caller drops it, and the next
            # batch may be written there by onnxruntime on another stream: nothing may still read it.
            self._torch.cuda.current_stream(self.device).synchronize()

    def finish(self, lo: int, hi: int, outputs: tuple[str, ...], n_out: int) -> Any:
        """Rows ``lo:hi`` (all complete) as host :class:`~pointseg_cli.infer.stream.Rows`; the ring rows are cleared."""
        from pointseg_cli.infer.stream import Rows

        torch = self._torch
        n = hi - lo
        shape = self.grid.shape[1:]
        crop = tuple(slice(0, s) for s in shape)
        n_total = self.acc.shape[0]
        want_p, want_l, want_c = "probabilities" in outputs, "logits" in outputs, n_total > n_out
        labels = np.empty((n, *shape), np.uint8)
        probs = np.empty((n_out, n, *shape), np.float16) if want_p else None
        norm_logits = np.empty((n_out, n, *shape), np.float32) if want_l else None
        centers = np.empty((n, *shape), np.float32) if want_c else None
        for j0 in range(0, n, FINISH_PLANES):  # a few planes at a time: bounded device memory
            j1 = min(n, j0 + FINISH_PLANES)
            ring = torch.as_tensor([(lo + j) % self.t0 for j in range(j0, j1)], device=self.device)
            block = self.acc.index_select(1, ring)[(slice(None), slice(None), *crop)]  # (n_total, m, *crop)
            logits = block[:n_out]
            labels[j0:j1] = logits.argmax(dim=0).to(torch.uint8).cpu().numpy()
            if want_p or want_l or want_c:
                inv0 = torch.from_numpy(1.0 / self.wsum0[lo + j0 : lo + j1]).to(self.device)
                scale = self.inv_inplane[None] * inv0.reshape(j1 - j0, *([1] * (self.grid.ndim - 1)))
                if want_c:
                    centers[j0:j1] = (block[n_out] * scale).cpu().numpy()
                if want_p or want_l:
                    norm = logits * scale[None]
                    if want_l:
                        norm_logits[:, j0:j1] = norm.cpu().numpy()
                    if want_p:
                        probs[:, j0:j1] = torch.softmax(norm, dim=0).to(torch.float16).cpu().numpy()
            del block, logits
            self.acc.index_fill_(1, ring, 0.0)
        return Rows(lo, labels, probs, norm_logits, centers)
