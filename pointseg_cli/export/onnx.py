"""Export a trained network to ONNX with pointseg metadata, checked for parity against PyTorch.

The exported graph has input ``image`` ``(N, C, *spatial)`` and output ``logits``
``(N, K+1, *spatial)`` — plus ``centers`` ``(N, 1, *spatial)`` for a network with the centre
head, declared in the metadata's ``pointseg.outputs`` — with dynamic batch and spatial axes,
carries the ``pointseg.*`` metadata of :mod:`pointseg_cli.model.metadata`, passes
``onnx.checker`` and agrees with the PyTorch model, on every output, on a random input of the
training tile size. If it does not, :class:`ParityError` is raised
and no file is left behind.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pointseg_cli.errors import ConfigError, ModelError, ParityError, check_choice
from pointseg_cli.model.checkpoint import load_model
from pointseg_cli.model.metadata import ModelMetadata, metadata_from_loaded
from pointseg_cli.model.spec import PRECISIONS

log = logging.getLogger(__name__)

#: Default parity tolerance on the relative error (max |onnx - torch| / max |torch|).
DEFAULT_TOLERANCE = {"fp32": 1e-4, "fp16": 2e-2}
MAX_OPSET = 18

__all__ = ["ExportConfig", "ExportResult", "export_module", "export_onnx", "run_export"]


@dataclass(frozen=True)
class ExportConfig:
    """Settings of an export, validated.

    Attributes
    ----------
    precision : {"fp32", "fp16"}
        fp16 halves the weights and the input/output element type.
    opset : int
        ONNX opset, 7 to :data:`MAX_OPSET`.
    tolerance : float, optional
        Maximum relative parity error; :data:`DEFAULT_TOLERANCE` by precision when None.
    """

    precision: str = "fp32"
    opset: int = 17
    tolerance: float | None = None

    def __post_init__(self) -> None:
        check_choice("precision", self.precision, PRECISIONS)
        if not 7 <= self.opset <= MAX_OPSET:
            raise ConfigError(f"opset must be between 7 and {MAX_OPSET}; got {self.opset}")
        if self.tolerance is not None and not (math.isfinite(float(self.tolerance)) and float(self.tolerance) > 0):
            raise ConfigError(f"tolerance must be > 0 and finite; got {self.tolerance}")

    @property
    def parity_tolerance(self) -> float:
        """The relative tolerance applied: ``tolerance``, else the precision's default."""
        return DEFAULT_TOLERANCE[self.precision] if self.tolerance is None else float(self.tolerance)


@dataclass(frozen=True)
class ExportResult:
    """Outcome of an export.

    Attributes
    ----------
    path : Path
        The written ``.onnx`` file.
    metadata : ModelMetadata
        What was stored in it.
    max_abs_error, max_rel_error : float
        Parity of onnxruntime against PyTorch (fp32) on a random tile; relative to ``max |torch|``.
    tolerance : float
        The relative tolerance that was applied.
    opset : int
        ONNX opset of the graph.
    size_bytes : int
        File size.
    """

    path: Path
    metadata: ModelMetadata
    max_abs_error: float
    max_rel_error: float
    tolerance: float
    opset: int
    size_bytes: int


def _dynamic_axes(ndim: int, outputs: tuple[str, ...] = ("logits",)) -> dict[str, dict[int, str]]:
    names = ["z", "y", "x"][-ndim:]
    spatial = {i + 2: n for i, n in enumerate(names)}
    return {"image": {0: "n", **spatial}, **{name: {0: "n", **spatial} for name in outputs}}


def _ort_run(path: Path, x: np.ndarray, outputs: tuple[str, ...] = ("logits",)) -> list[np.ndarray]:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [np.asarray(y, dtype=np.float32) for y in sess.run(list(outputs), {"image": x})]


def _graph_module(model: Any, outputs: tuple[str, ...]) -> Any:
    """The module to trace: ``model`` itself, or a wrapper returning its named outputs as a tuple."""
    if outputs == ("logits",):
        return model
    import torch

    class _Outputs(torch.nn.Module):
        def __init__(self, net: torch.nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
            heads = self.net.forward_heads(x)
            return tuple(heads[name] for name in outputs)

    return _Outputs(model).eval()


def export_module(
    model: Any,
    metadata: ModelMetadata,
    out: str | Path,
    *,
    precision: str = "fp32",
    opset: int = 17,
    tolerance: float | None = None,
    seed: int = 0,
) -> ExportResult:
    """Export a PyTorch module (``(N, C, *spatial) -> (N, K+1, *spatial)``) to ``out``.

    Parameters
    ----------
    model : torch.nn.Module
        The network (put in eval mode, moved to CPU for export).
    metadata : ModelMetadata
        Classes, ndim, channels, normalisation, tile and divisor to store.
    out : path-like
        Destination ``.onnx`` file (written atomically).
    precision : {"fp32", "fp16"}
        fp16 halves the weights and the input/output element type.
    opset : int
        ONNX opset, at most :data:`MAX_OPSET`.
    tolerance : float, optional
        Maximum relative parity error; :data:`DEFAULT_TOLERANCE` by precision when None.
    seed : int
        Seed of the random parity input.
    """
    import onnx
    import torch

    from pointseg_cli.io.images import atomic_output

    tol = ExportConfig(precision=precision, opset=opset, tolerance=tolerance).parity_tolerance
    out = Path(out)
    model = model.to("cpu").eval()
    meta = ModelMetadata(**{**metadata.__dict__, "precision": precision})
    rng = np.random.default_rng(seed)
    x = rng.random((1, meta.channels, *meta.tile), dtype=np.float32)
    graph = _graph_module(model, meta.outputs)
    with torch.inference_mode():
        refs = graph(torch.from_numpy(x))
        refs = [r.float().numpy() for r in (refs if isinstance(refs, tuple) else (refs,))]
    ref = refs[0]
    if ref.shape != (1, meta.n_outputs, *meta.tile):
        raise ModelError(
            f"model output shape {ref.shape} does not match the metadata's (1, {meta.n_outputs}, *{meta.tile})"
        )
    export_model = graph
    dummy = torch.from_numpy(x)
    if precision == "fp16":
        import copy

        export_model = copy.deepcopy(graph).half()
        dummy = dummy.half()
    with atomic_output(out) as tmp:
        try:
            with warnings.catch_warnings():
                # dynamo=False on purpose: the TorchScript exporter gives plain Conv graphs that
                # onnxruntime's CUDA provider runs best; its deprecation notice is not for users.
                warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
                torch.onnx.export(
                    export_model, (dummy,), str(tmp), input_names=["image"], output_names=list(meta.outputs),
                    dynamic_axes=_dynamic_axes(meta.ndim, meta.outputs), opset_version=opset, dynamo=False,
                )
        except (RuntimeError, ValueError, TypeError) as exc:
            raise ModelError(f"torch.onnx.export failed: {exc}") from exc
        proto = onnx.load(str(tmp))
        del proto.metadata_props[:]
        for key, value in meta.to_props().items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        proto.doc_string = f"pointseg model: classes {list(meta.classes)}, {meta.kind}"
        try:
            onnx.checker.check_model(proto, full_check=True)
        except onnx.checker.ValidationError as exc:
            raise ModelError(f"exported graph fails onnx.checker: {exc}") from exc
        onnx.save(proto, str(tmp))
        feed = x.astype(np.float16) if precision == "fp16" else x
        # every output is compared, each relative to its own scale; the worst one counts
        abs_err = rel_err = 0.0
        for name, got, want in zip(meta.outputs, _ort_run(tmp, feed, meta.outputs), refs, strict=True):
            err = float(np.max(np.abs(got - want)))
            rel = err / (float(np.max(np.abs(want))) or 1.0)
            log.info("parity onnxruntime vs torch, %s: max abs %.3g, rel %.3g (tolerance %.3g)", name, err, rel, tol)
            if not np.isfinite(rel) or rel >= rel_err:
                abs_err, rel_err = err, rel
        if not np.isfinite(rel_err) or rel_err > tol:
            raise ParityError(
                f"ONNX output differs from PyTorch beyond tolerance: max abs error {abs_err:.3g}, "
                f"relative {rel_err:.3g} > {tol:.3g} ({precision}); no file written"
            )
    return ExportResult(
        path=out, metadata=meta, max_abs_error=abs_err, max_rel_error=rel_err, tolerance=tol,
        opset=opset, size_bytes=out.stat().st_size,
    )


def export_onnx(
    run_dir_or_ckpt: str | Path,
    out: str | Path,
    *,
    precision: str = "fp32",
    opset: int = 17,
    tolerance: float | None = None,
) -> ExportResult:
    """Export a training run (``config.json`` + ``best.pt``) or a ``.pt`` checkpoint to ONNX.

    See :func:`export_module` for the parameters and checks.
    """
    loaded = load_model(run_dir_or_ckpt, device="cpu")
    return export_module(
        loaded.model, metadata_from_loaded(loaded), out, precision=precision, opset=opset, tolerance=tolerance
    )


def run_export(source: str | Path, out: str | Path, *, config: ExportConfig | None = None) -> ExportResult:
    """The library behind ``pointseg export``: :func:`export_onnx` with an :class:`ExportConfig`.

    Parameters
    ----------
    source : training run directory (``config.json`` + ``best.pt``) or a ``.pt`` checkpoint
    out : destination ``.onnx`` file (written only if parity holds)
    config : precision, opset and parity tolerance (defaults: fp32, opset 17, by precision)
    """
    config = config or ExportConfig()
    return export_onnx(source, out, precision=config.precision, opset=config.opset, tolerance=config.tolerance)
