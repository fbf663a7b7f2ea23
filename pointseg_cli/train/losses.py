"""The paper's losses (Li, Dey et al. 2021, Sec. 2): L_point, L_obj, L_img, and dense CE; plus
L_center, the regression of the object-centre map (our addition, for instance segmentation).

Notation: logits ``(N, K + 1, *spatial)``, ``S = softmax(logits)`` over the class axis, class 0 is
background. All terms are computed in float32 from ``log_softmax`` (no ``log(softmax)``), and
``log(1 - S)`` is computed as ``logsumexp`` over the other classes minus ``logsumexp`` over all,
so no term produces ``inf`` or ``nan`` for saturated outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pointseg_cli.train.config import TrainConfig

#: Value of unlabelled pixels in a sparse label map.
UNLABELLED = -1


def point_loss(logits: torch.Tensor, sparse: torch.Tensor, *, bg_weight: float) -> torch.Tensor:
    """L_point = −Σ_i α_i log S_{i,G_i} / Σ_i α_i over labelled pixels.

    Parameters
    ----------
    logits : Tensor ``(N, K + 1, *spatial)``
    sparse : Tensor ``(N, *spatial)`` int
        ``-1`` unlabelled, ``0`` boundary background (α = ``bg_weight``), ``k >= 1`` a point pixel
        of class ``k`` (α = 1).
    bg_weight : float
        α of the boundary background pixels (0.1 in the paper).

    Returns
    -------
    Tensor
        Scalar; 0 (with a gradient path) when nothing is labelled.
    """
    logp = F.log_softmax(logits.float(), dim=1)
    target = sparse.long()
    alpha = torch.where(target > 0, 1.0, torch.where(target == 0, float(bg_weight), 0.0)).to(logp.dtype)
    nll = -logp.gather(1, target.clamp(min=0).unsqueeze(1)).squeeze(1)
    total = alpha.sum()
    return (alpha * nll).sum() / total.clamp(min=1e-12)


def objectness_loss(logits: torch.Tensor, soft: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """L_obj = −(1/|I|) Σ_i Σ_c β_c P_ic log S_ic, averaged over pixels and the batch.

    Parameters
    ----------
    logits : Tensor ``(N, K + 1, *spatial)``
    soft : Tensor ``(N, K + 1, *spatial)``
        Objectness soft labels P.
    beta : Tensor ``(K + 1,)``
        Class weights β (β_0 for background).
    """
    logp = F.log_softmax(logits.float(), dim=1)
    shape = (1, -1) + (1,) * (logits.ndim - 2)
    weighted = beta.to(logp).view(shape) * soft.to(logp) * logp
    return -weighted.sum(dim=1).mean()


def image_loss(logits: torch.Tensor, present: torch.Tensor, absent: torch.Tensor | None = None) -> torch.Tensor:
    """L_img: for each object class c, t_c = argmax_i S_ic over the crop's pixels;
    −(1/|L|) Σ_{c∈L} log S_{t_c,c} − (1/|L'|) Σ_{c∈L'} log(1 − S_{t_c,c}), averaged over the batch.

    Parameters
    ----------
    logits : Tensor ``(N, K + 1, *spatial)``
    present : Tensor ``(N, K)`` bool
        Whether object class ``c = k + 1`` has a point in sample ``n``'s crop (L), else L'.
        A sample whose L (or L') is empty contributes only the other sum.
    absent : Tensor ``(N, K)`` bool, optional
        L' (classes pushed down); default ``~present`` (the paper). A class in neither set is
        left out of both sums (a point just outside the crop: its object may still show).
    """
    n, k1 = logits.shape[:2]
    z = logits.float().reshape(n, k1, -1)  # (N, K+1, P)
    logp = F.log_softmax(z, dim=1)
    t = logp[:, 1:, :].argmax(dim=2)  # (N, K) pixel of highest S_c per object class
    # Logits of all classes at each t_c: (N, K+1, K)
    z_at = z.gather(2, t.unsqueeze(1).expand(n, k1, t.shape[1]))
    lse_all = torch.logsumexp(z_at, dim=1)  # (N, K)
    cls = torch.arange(1, k1, device=z.device)
    z_c = z_at.gather(1, cls.view(1, 1, -1).expand(n, 1, -1)).squeeze(1)  # (N, K)
    log_s = z_c - lse_all
    own = F.one_hot(cls, k1).T.bool().unsqueeze(0)  # (1, K+1, K): True at class c
    log_1ms = torch.logsumexp(z_at.masked_fill(own, float("-inf")), dim=1) - lse_all
    pres = present.to(torch.bool)
    pos = pres.to(log_s.dtype)
    neg = (~pres if absent is None else absent.to(torch.bool) & ~pres).to(log_s.dtype)
    term_l = -(log_s * pos).sum(1) / pos.sum(1).clamp(min=1)
    term_lp = -(log_1ms * neg).sum(1) / neg.sum(1).clamp(min=1)
    return (term_l + term_lp).mean()


def dense_loss(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Fully supervised cross-entropy on dense class-id masks ``(N, *spatial)`` (−1 ignored)."""
    return F.cross_entropy(logits.float(), masks.long(), ignore_index=UNLABELLED)


def center_loss(centers: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_center = Σ_i m_i (C_i − T_i)² / Σ_i m_i: masked mean squared error of the centre map.

    Parameters
    ----------
    centers : Tensor ``(N, 1, *spatial)``
        The network's centre map C in [0, 1].
    target : Tensor ``(N, 2, *spatial)``
        Channel 0 the target T in [0, 1], channel 1 the weight m (0 = unknown pixel); see
        :mod:`pointseg_cli.train.targets`.

    Returns
    -------
    Tensor
        Scalar; 0 (with a gradient path) when no pixel is known.
    """
    c = centers.float()[:, 0]
    t, m = target.float()[:, 0], target.float()[:, 1]
    return (m * (c - t) ** 2).sum() / m.sum().clamp(min=1e-12)


@dataclass(frozen=True)
class LossOutput:
    """Total loss (with gradient) and the detached terms for logging (0 for switched-off terms)."""

    total: torch.Tensor
    terms: dict[str, float]


def point_weight(sparse: torch.Tensor, *, bg_weight: float) -> torch.Tensor:
    """Σα: the total weight of the labelled pixels of a batch (the normaliser of :func:`point_loss`)."""
    target = sparse.long()
    return (target > 0).sum() + float(bg_weight) * (target == 0).sum()


class PointSupervisionLoss:
    """L = λ1 L_point + λ2 L_obj + λ3 L_img + λ_center L_center with the terms the config switches on.

    With ``supervision="masks"`` the class terms are the dense cross-entropy upper bound instead
    (L_center, when on, then regresses the target built from the instance masks).

    ``img_scale``: L_point is a weighted *mean* over the labelled pixels, while in the image-level
    loss's original formulation (Bearman et al. 2016) the point loss is a *sum* over them, so each
    crop's L_img there weighs as much as one clicked pixel. ``"crop"`` (default) adds L_img as it
    is (each crop's L_img weighs as much as all its labelled pixels together, about 190 times
    more on 128×128 H&E crops); ``"point"`` multiplies it by N / Σα, the original balance.
    """

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        k = len(config.classes)
        self.beta = torch.tensor([config.beta_bg] + [config.beta_obj] * k, dtype=torch.float32)

    def __call__(
        self, logits: torch.Tensor, batch: dict[str, torch.Tensor], centers: torch.Tensor | None = None
    ) -> LossOutput:
        """Loss of one batch; ``centers`` is the centre head's output (needed with the ``center`` loss)."""
        cfg = self.config
        if cfg.supervision == "masks":
            dense = dense_loss(logits, batch["mask"])
            return self._add_center(dense, {"dense": float(dense.detach())}, centers, batch)
        lam_point, lam_obj, lam_img = cfg.lambdas
        terms: dict[str, float] = {}
        pce = point_loss(logits, batch["sparse"], bg_weight=cfg.bg_weight)
        total = lam_point * pce
        terms["point"] = float(pce.detach())
        if "obj" in cfg.losses:
            obj = objectness_loss(logits, batch["soft"], self.beta)
            total = total + lam_obj * obj
            terms["obj"] = float(obj.detach())
        if "img" in cfg.losses:
            img = image_loss(logits, batch["present"], batch.get("absent"))
            scale = 1.0
            if cfg.img_scale == "point":  # logged unscaled, so runs with either setting compare
                scale = logits.shape[0] / point_weight(batch["sparse"], bg_weight=cfg.bg_weight).clamp(min=1.0)
            total = total + lam_img * scale * img
            terms["img"] = float(img.detach())
        return self._add_center(total, terms, centers, batch)

    def _add_center(
        self, total: torch.Tensor, terms: dict[str, float], centers: torch.Tensor | None, batch: dict[str, torch.Tensor]
    ) -> LossOutput:
        if "center" not in self.config.losses:
            return LossOutput(total, terms)
        if centers is None or "center" not in batch:
            raise ValueError("the center loss needs the network's centre map and the batch's 'center' target")
        cen = center_loss(centers, batch["center"])
        terms["center"] = float(cen.detach())
        return LossOutput(total + self.config.center_weight * cen, terms)
