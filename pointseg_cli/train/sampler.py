"""Random crops that contain points, augmentation, and a background prefetching thread.

Batch ``b`` is a pure function of ``(seed, stream, b)`` — a fresh ``numpy`` generator per batch —
so runs are reproducible, a resumed run sees the batches an uninterrupted run would have seen,
and a background thread can compute batches ahead of the training step.

Augmentation (training only):

* 2D: random affine (rotation, scale 0.8–1.25, shear, flip) applied with one ``grid_sample``
  to image, soft labels and centre target (bilinear; a centre-target pixel stays known only where
  all its source pixels were) and boundary background / masks (nearest); point
  coordinates are transformed analytically and re-drawn afterwards, so a clicked pixel is never
  lost to nearest-neighbour resampling. Then HSV shift (RGB only), Gaussian blur, Gaussian noise
  on the image alone.
* 3D: one of the 16 elements of D4h (90° in-plane rotations × in-plane flip × z flip; only the
  180° rotations when the crop's Y and X differ), then Gaussian noise.
"""

from __future__ import annotations

import collections
import concurrent.futures
import math
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pointseg_cli.train.config import TrainConfig
from pointseg_cli.train.data import ImageData
from pointseg_cli.train.losses import UNLABELLED
from pointseg_cli.train.targets import rasterize_points

Batch = dict[str, torch.Tensor]


class CropSampler:
    """Draws batches of crops, each containing at least one point, from prepared images.

    Parameters
    ----------
    images : list of ImageData
    config : TrainConfig
        Uses ``crop``, ``batch_size``, ``seed``, ``point_radius``, ``classes``, ``losses``.
    augment : bool
        Apply the augmentation described in the module docstring.
    stream : int
        Separates random streams (0 training, 1 validation).
    """

    def __init__(self, images: list[ImageData], config: TrainConfig, *, augment: bool, stream: int = 0) -> None:
        if not images:
            raise ValueError("CropSampler needs at least one image")
        self.images = images
        self.config = config
        self.augment = augment
        self.stream = stream
        self.crop = np.array(config.crop, dtype=np.int64)
        self.ndim = len(self.crop)
        self.n_classes = len(config.classes)
        self._owner = np.concatenate([np.full(len(im.points), i) for i, im in enumerate(images)])
        self._flat = np.concatenate([im.points for im in images], axis=0)
        self.with_soft = images[0].soft is not None
        self.with_mask = images[0].mask is not None
        self.with_center = images[0].center is not None

    @property
    def n_points(self) -> int:
        return len(self._flat)

    def batch(self, index: int) -> Batch:
        """Batch number ``index`` (deterministic)."""
        rng = np.random.default_rng([self.config.seed, self.stream, index])
        bsz = int(self.config.batch_size or 1)
        pick = rng.integers(self.n_points, size=bsz)
        margin = self.config.img_margin
        imgs, softs, bgs, masks, centers, pts, cls = [], [], [], [], [], [], []
        for b, j in enumerate(pick):
            im = self.images[self._owner[j]]
            shape = np.array(im.spatial_shape)
            p = self._flat[j]
            lo = np.maximum(p - self.crop + 1, 0)
            hi = np.minimum(p, shape - self.crop)
            origin = rng.integers(lo, hi + 1)
            box = tuple(slice(int(o), int(o + c)) for o, c in zip(origin, self.crop, strict=True))
            imgs.append(im.image[(slice(None), *box)])
            if self.with_soft:
                softs.append(im.soft[(slice(None), *box)])  # type: ignore[index]
            bgs.append(im.background[box] if im.background is not None else np.zeros(self.crop, bool))
            if self.with_mask:
                masks.append(im.mask[box])  # type: ignore[index]
            if self.with_center:
                centers.append(im.center[(slice(None), *box)])  # type: ignore[index]
            # points in the crop and, for L_img's "absent" rule, those up to img_margin outside it
            near = np.all((im.points >= origin - margin) & (im.points < origin + self.crop + margin), axis=1)
            local = im.points[near] - origin
            pts.append(np.concatenate([np.full((len(local), 1), b), local], axis=1))
            cls.append(im.classes[near])
        out: dict[str, Any] = {
            "image": torch.from_numpy(np.stack(imgs).astype(np.float32, copy=False)),
            "background": torch.from_numpy(np.stack(bgs)),
        }
        if self.with_soft:
            out["soft"] = torch.from_numpy(np.stack(softs).astype(np.float32))
        if self.with_mask:
            out["mask"] = torch.from_numpy(np.stack(masks).astype(np.int64))
        if self.with_center:
            out["center"] = torch.from_numpy(np.stack(centers).astype(np.float32))
        points = np.concatenate(pts, axis=0)
        classes = np.concatenate(cls, axis=0)
        if self.augment and self.ndim == 2:
            points = self._affine_2d(out, points, rng)
            self._photometric_2d(out, rng)
        keep = np.all((points[:, 1:] >= 0) & (points[:, 1:] < self.crop), axis=1)
        close = np.all((points[:, 1:] >= -margin) & (points[:, 1:] < self.crop + margin), axis=1)
        # L_img labels: present = a point in the crop; near = a point only just outside it, whose
        # object may still show in the crop, so it is neither present nor counted absent
        present = np.zeros((bsz, self.n_classes), bool)
        present[points[keep, 0], classes[keep] - 1] = True
        near = np.zeros((bsz, self.n_classes), bool)
        near[points[close, 0], classes[close] - 1] = True
        points, classes = points[keep], classes[keep]
        sparse = np.full((bsz, *self.crop), UNLABELLED, dtype=np.int16)
        sparse[out.pop("background").numpy()] = 0
        rasterize_points(sparse, points, classes, radius=self.config.point_radius, spatial_ndim=self.ndim)
        out["sparse"] = torch.from_numpy(sparse)
        out["present"] = torch.from_numpy(present)
        out["absent"] = torch.from_numpy(~(present | near))
        if self.augment and self.ndim == 3:
            self._d4h(out, rng)
        if self.augment:
            self._noise(out, rng)
        return out

    def _affine_2d(self, out: dict[str, Any], points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Warp the batch in place; return the moved points (crop coordinates, possibly outside it)."""
        bsz = out["image"].shape[0]
        sy, sx = (float(c) for c in self.crop)
        mats = np.zeros((bsz, 2, 2))
        for b in range(bsz):
            ang = rng.uniform(-math.pi, math.pi)
            scale = math.exp(rng.uniform(math.log(0.8), math.log(1.25)))
            shear = rng.uniform(-0.15, 0.15)
            flip = -1.0 if rng.random() < 0.5 else 1.0
            rot = np.array([[math.cos(ang), -math.sin(ang)], [math.sin(ang), math.cos(ang)]])
            mats[b] = rot @ np.array([[1.0, shear], [0.0, 1.0]]) @ np.diag([flip * scale, scale])
        # Output pixel o (x, y order) samples input pixel c + A (o - c); in grid_sample's
        # normalised coordinates (align_corners=False) that is theta[a, b] = A[a, b] * S_b / S_a.
        size = np.array([sx, sy])
        theta = np.zeros((bsz, 2, 3), np.float32)
        theta[:, :, :2] = mats * size[None, None, :] / size[None, :, None]
        grid = F.affine_grid(torch.from_numpy(theta), [bsz, 1, int(sy), int(sx)], align_corners=False)
        # Image, soft labels and centre target share one bilinear pass (one call instead of several).
        dense = [k for k in ("image", "soft", "center") if k in out]
        sizes = [out[k].shape[1] for k in dense]
        warped = F.grid_sample(
            torch.cat([out[k] for k in dense], dim=1), grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )
        for k, part in zip(dense, torch.split(warped, sizes, dim=1), strict=True):
            out[k] = part
        if "center" in out:
            # a pixel is known only where all of its bilinear neighbours were (zeros padding: outside the crop)
            out["center"][:, 1] = (out["center"][:, 1] > 0.999).float()
        bg = F.grid_sample(out["background"][:, None].float(), grid, mode="nearest", align_corners=False)
        out["background"] = bg[:, 0] > 0.5
        if "mask" in out:
            m = F.grid_sample((out["mask"][:, None] + 1).float(), grid, mode="nearest", align_corners=False)
            out["mask"] = m[:, 0].round().long() - 1
        if len(points) == 0:
            return points
        centre = (size - 1) / 2
        inv = np.linalg.inv(mats)[points[:, 0]]  # (P, 2, 2)
        xy = points[:, [2, 1]].astype(np.float64) - centre
        new_xy = np.einsum("pab,pb->pa", inv, xy) + centre
        return np.concatenate([points[:, :1], np.rint(new_xy[:, [1, 0]]).astype(np.int64)], axis=1)

    def _photometric_2d(self, out: dict[str, Any], rng: np.random.Generator) -> None:
        img = out["image"]
        bsz, c = img.shape[:2]
        if c == 3:
            from skimage.color import hsv2rgb, rgb2hsv

            arr = img.permute(0, 2, 3, 1).numpy().clip(0, 1)
            for b in range(bsz):
                hsv = rgb2hsv(arr[b])
                hsv[..., 0] = (hsv[..., 0] + rng.uniform(-0.05, 0.05)) % 1.0
                hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(0.8, 1.2), 0, 1)
                hsv[..., 2] = np.clip(hsv[..., 2] * rng.uniform(0.8, 1.2), 0, 1)
                arr[b] = hsv2rgb(hsv)
            img = torch.from_numpy(np.ascontiguousarray(arr.transpose(0, 3, 1, 2), dtype=np.float32))
        for b in np.flatnonzero(rng.random(bsz) < 0.3):
            sigma = rng.uniform(0.5, 1.5)
            r = int(math.ceil(2 * sigma))
            t = torch.arange(-r, r + 1, dtype=torch.float32)
            k = torch.exp(-(t**2) / (2 * sigma * sigma))
            k = (k / k.sum()).repeat(c, 1, 1)
            x = F.pad(img[b : b + 1], (r, r, r, r), mode="reflect")
            x = F.conv2d(x, k.view(c, 1, 1, -1), groups=c)
            img[b] = F.conv2d(x, k.view(c, 1, -1, 1), groups=c)[0]
        out["image"] = img

    def _d4h(self, out: dict[str, Any], rng: np.random.Generator) -> None:
        square = self.crop[-1] == self.crop[-2]
        for b in range(out["image"].shape[0]):
            k = int(rng.integers(4)) if square else 2 * int(rng.integers(2))
            flips = [d for d, f in ((-1, rng.random() < 0.5), (-3, rng.random() < 0.5)) if f]
            for key in ("image", "soft", "sparse", "mask", "center"):
                if key not in out:
                    continue
                x = out[key][b]
                x = torch.rot90(x, k, dims=(-2, -1)) if k else x
                out[key][b] = torch.flip(x, dims=flips) if flips else x

    @staticmethod
    def _noise(out: dict[str, Any], rng: np.random.Generator) -> None:
        img = out["image"]
        std = rng.uniform(0.0, 0.03, img.shape[0]).astype(np.float32)
        rows = np.flatnonzero(rng.random(img.shape[0]) < 0.5)  # half the samples get noise
        if rows.size:
            # torch's generator (seeded from the batch's rng) draws normals about twice as fast as numpy's
            gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
            noise = torch.randn((rows.size, *img.shape[1:]), generator=gen, dtype=torch.float32)
            noise.mul_(torch.from_numpy(std[rows]).view(-1, *[1] * (img.ndim - 1)))
            img.index_add_(0, torch.from_numpy(rows), noise)


class Prefetcher:
    """Compute ``fn(i)`` for ``i`` in ``indices`` on background threads, up to ``depth`` items ahead.

    Iterate to get ``(i, fn(i))`` in order; exceptions in a worker are re-raised in the caller.
    Use as a context manager (or call :meth:`close`) so the workers stop when training stops.
    ``fn`` must be safe to call from several threads at once when ``workers > 1`` (the sampler's
    batches are pure functions of their index).

    Each worker runs torch ops with ``threads`` intra-op threads (1 by default; the setting is
    per thread and leaves the training thread's alone): batch ops are small, and a second
    OpenMP pool competing with the training step's costs far more than it gains (measured on
    a loaded 2-core machine: a 5-tap blur of 8×64×64 took 45 ms with 2 threads, 0.9 ms with 1).
    Several workers pay off when the training step runs elsewhere (a GPU) and the cores are free.
    """

    def __init__(
        self,
        fn: Callable[[int], Any],
        indices: range,
        *,
        depth: int = 4,
        workers: int = 1,
        threads: int | None = 1,
        nice: int = 10,
    ) -> None:
        self._threads = threads
        self._nice = nice
        self._fn = fn
        self._todo = iter(indices)
        self._n = len(indices)
        self._pending: collections.deque[tuple[int, concurrent.futures.Future[Any]]] = collections.deque()
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=max(1, workers), thread_name_prefix="pointseg-batches", initializer=self._init_worker
        )
        for _ in range(max(1, depth, workers)):
            self._submit()

    def _init_worker(self) -> None:
        if self._threads is not None:
            torch.set_num_threads(self._threads)
        if self._nice:
            _lower_thread_priority(self._nice)

    def _submit(self) -> None:
        i = next(self._todo, None)
        if i is not None:
            self._pending.append((i, self._pool.submit(self._fn, i)))

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        while self._pending:
            i, future = self._pending.popleft()
            value = future.result()  # re-raises the worker's exception
            self._submit()
            yield i, value

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _lower_thread_priority(nice: int) -> None:
    """Raise the calling thread's nice value (Linux: per thread; elsewhere silently skipped).

    The batch thread then only takes CPU the training step leaves idle (its OpenMP barriers, the
    optimiser's Python overhead) instead of preempting an OpenMP worker mid-step; when the queue
    runs dry the training thread blocks and the batch thread gets the cores anyway.
    """
    import os

    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), os.getpriority(os.PRIO_PROCESS, 0) + nice)
    except (AttributeError, OSError):
        return
