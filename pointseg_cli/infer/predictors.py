"""Predictors: run a segmentation network on a batch of tiles.

A :class:`Predictor` maps ``(N, C, *spatial)`` float32 tiles to ``(N, K+1, *spatial)`` float32
logits and carries the model metadata that ``segment`` needs (classes, channels, normalisation,
tile, size divisor). :class:`OrtPredictor` runs an ONNX model with onnxruntime (CUDA execution
provider with IO binding on a GPU, CPU provider otherwise); :class:`TorchPredictor` runs a PyTorch
module (training checkpoints, side-by-side tests). Both also have ``predict_all(batch)``: every
output by name, float32 — ``logits`` and, when ``metadata.has_centers``, the object-centre map
``centers`` ``(N, 1, *spatial)`` in [0, 1] (not part of the :class:`Predictor` protocol, so
predictors without it keep working).
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from pointseg_cli import devices
from pointseg_cli.devices import DEVICE_CHOICES
from pointseg_cli.errors import ConfigError, DeviceError, ModelError, check_choice
from pointseg_cli.model.metadata import ModelMetadata, read_model_metadata
from pointseg_cli.model.spec import PRECISION_CHOICES, PRECISIONS

log = logging.getLogger(__name__)


@runtime_checkable
class Predictor(Protocol):
    """What the inference loop needs from a model."""

    @property
    def metadata(self) -> ModelMetadata: ...

    @property
    def provider(self) -> str:
        """Human-readable name of the backend that runs the model (e.g. ``CUDAExecutionProvider``)."""
        ...

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Logits ``(N, K+1, *spatial)`` float32 for tiles ``(N, C, *spatial)`` float32."""
        ...


def _check_batch(batch: np.ndarray, meta: ModelMetadata) -> None:
    if batch.ndim != meta.ndim + 2 or batch.shape[1] != meta.channels:
        raise ModelError(
            f"model expects tiles (N, {meta.channels}, {'Z, ' if meta.ndim == 3 else ''}Y, X); "
            f"got shape {batch.shape}"
        )


def _import_ort(*, want_cuda: bool) -> Any:
    import io

    import onnxruntime as ort

    preload = getattr(ort, "preload_dlls", None)
    if want_cuda and preload is not None:
        # preload_dlls prints to stdout about every library it cannot find; keep that in the log.
        buf = io.StringIO()
        try:
            with contextlib.redirect_stdout(buf):
                preload()
        except (OSError, RuntimeError) as exc:  # missing CUDA libraries: the CPU provider still works
            log.debug("onnxruntime.preload_dlls() failed: %s", exc)
        if buf.getvalue().strip():
            log.debug("onnxruntime.preload_dlls(): %s", buf.getvalue().strip())
    return ort


def physical_cores() -> int:
    """Physical CPU cores this process may run on (hyperthreads not counted; at least 1)."""
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 1
    physical = None
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
    except ImportError:
        pass
    return max(1, min(usable, physical or usable))


def session_options(ort: Any, *, threads: int | None = None) -> Any:
    """onnxruntime session options for tiled inference on this machine.

    Intra-op threads = ``threads``, or the physical cores this process may use (onnxruntime's own
    default counts every core of the machine, also those a container or ``taskset`` withholds);
    one inter-op thread and sequential execution (the graph is a chain of convolutions); all graph
    optimisations; the memory arena and memory-pattern planning on, so buffers are reused from one
    tile batch to the next. Worker threads do not spin while waiting for work, which leaves the
    cores to the reader and writer threads (and to other processes on a shared machine).
    """
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads) if threads else physical_cores()
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.enable_cpu_mem_arena = True
    opts.enable_mem_pattern = True
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return opts


class OrtPredictor:
    """Run an ONNX model exported by ``pointseg export`` with onnxruntime.

    Parameters
    ----------
    path : path-like
        The ``.onnx`` file (its ``pointseg.*`` metadata is read and validated).
    device : {"auto", "cpu", "cuda"}
        ``auto`` uses CUDA only when the created session really has ``CUDAExecutionProvider``;
        ``cuda`` raises :class:`DeviceError` when it does not (no silent CPU fallback).
    threads : int, optional
        Intra-op threads for the CPU provider (the physical cores this process may use when None;
        see :func:`session_options`).
    """

    def __init__(self, path: str | Path, *, device: str = "auto", threads: int | None = None) -> None:
        check_choice("device", device, DEVICE_CHOICES)
        self.path = Path(path)
        self._meta = read_model_metadata(self.path)
        # ``auto`` skips the CUDA attempt where no NVIDIA driver exists (saves time and log noise);
        # everywhere else the created session's providers decide, never get_available_providers().
        no_driver = devices.nvidia_driver_absent()
        if device == "cuda" and no_driver:
            raise DeviceError(
                "device 'cuda' was requested but this machine has no NVIDIA driver (no /proc/driver/nvidia); "
                "use --device cpu or auto"
            )
        want_cuda = device == "cuda" or (device == "auto" and not no_driver)
        ort = _import_ort(want_cuda=want_cuda)
        opts = session_options(ort, threads=threads)
        if not log.isEnabledFor(logging.DEBUG):
            # onnxruntime logs a failed CUDA provider at error level on stderr; we report it ourselves.
            opts.log_severity_level = 4
        providers: list[Any] = ["CPUExecutionProvider"]
        if want_cuda:
            providers = [("CUDAExecutionProvider", {}), "CPUExecutionProvider"]
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=opts, providers=providers)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own untyped errors
            if device == "cuda":
                raise DeviceError(f"could not create a CUDA onnxruntime session for {self.path.name}: {exc}") from exc
            if device == "auto" and len(providers) > 1:
                log.info("CUDA session failed (%s); using the CPU provider", exc)
                self.session = ort.InferenceSession(
                    str(self.path), sess_options=opts, providers=["CPUExecutionProvider"]
                )
            else:
                raise ModelError(f"onnxruntime cannot load {self.path}: {exc}") from exc
        active = self.session.get_providers()
        self.on_cuda = "CUDAExecutionProvider" in active
        if device == "cuda" and not self.on_cuda:
            raise DeviceError(
                "device 'cuda' was requested but onnxruntime created a session with "
                f"{', '.join(active)} only (no CUDAExecutionProvider); use --device cpu or auto"
            )
        inp = self.session.get_inputs()[0]
        self._input_name = inp.name
        self._output_name = self.session.get_outputs()[0].name
        graph_outputs = [o.name for o in self.session.get_outputs()]
        missing = [name for name in self._meta.outputs if name not in graph_outputs]
        if missing:
            raise ModelError(
                f"{self.path.name} declares outputs {list(self._meta.outputs)} but its graph has {graph_outputs}"
            )
        self._input_dtype = np.float16 if "float16" in inp.type else np.float32
        self._output_dtypes = {
            o.name: np.dtype(np.float16 if "float16" in o.type else np.float32) for o in self.session.get_outputs()
        }
        self._ort = ort
        log.info("onnxruntime session for %s uses %s", self.path.name, active[0])

    @property
    def metadata(self) -> ModelMetadata:
        return self._meta

    @property
    def provider(self) -> str:
        return "CUDAExecutionProvider" if self.on_cuda else "CPUExecutionProvider"

    @property
    def input_dtype(self) -> np.dtype:
        """The graph's input type (float16 for an fp16 export): batches in it are passed without a copy."""
        return np.dtype(self._input_dtype)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return self._run(batch, (self._output_name,))[0]

    def predict_all(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        names = self._meta.outputs
        return dict(zip(names, self._run(batch, names), strict=True))

    def _run(self, batch: np.ndarray, names: tuple[str, ...]) -> list[np.ndarray]:
        _check_batch(batch, self._meta)
        x = np.ascontiguousarray(batch, dtype=self._input_dtype)
        if self.on_cuda:
            binding = self.session.io_binding()
            x_dev = self._ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0)
            binding.bind_ortvalue_input(self._input_name, x_dev)
            for name in names:
                binding.bind_output(name, "cuda", 0)
            self.session.run_with_iobinding(binding)
            outs = binding.copy_outputs_to_cpu()
        else:
            outs = self.session.run(list(names), {self._input_name: x})
        return [np.asarray(out, dtype=np.float32) for out in outs]

    def predict_device(self, batch: np.ndarray, *, centers: bool = False) -> Any:
        """One batch's outputs as a torch tensor on the session's device, never copied to the host.

        onnxruntime writes each output straight into a torch tensor (IO binding to its memory):
        on the CUDA provider the result stays in GPU memory for :class:`DeviceBlender`; on the CPU
        provider the same code runs on host memory. Returns ``(N, K+1 [+1], *spatial)`` in the
        graph's output type (float16 for an fp16 export), the centre map as the last channel
        when ``centers``.
        """
        import torch

        _check_batch(batch, self._meta)
        if centers and not self._meta.has_centers:
            raise ModelError(f"{self.path.name} has no centre output")
        x = np.ascontiguousarray(batch, dtype=self._input_dtype)
        names = ("logits", "centers") if centers else (self._output_name,)
        channels = {"centers": 1}
        dev = torch.device("cuda", 0) if self.on_cuda else torch.device("cpu")
        binding = self.session.io_binding()
        if self.on_cuda:
            binding.bind_ortvalue_input(self._input_name, self._ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0))
        else:
            binding.bind_cpu_input(self._input_name, x)
        outs = []
        for name in names:
            dtype = self._output_dtypes[name]
            shape = (x.shape[0], channels.get(name, self._meta.n_outputs), *x.shape[2:])
            t = torch.empty(shape, dtype=torch.float16 if dtype == np.float16 else torch.float32, device=dev)
            binding.bind_output(name, dev.type, dev.index or 0, dtype, list(shape), t.data_ptr())
            outs.append(t)
        if self.on_cuda:
            # torch may hand out memory that kernels queued on its stream (blending the previous
            # batch) still read; onnxruntime writes on its own stream, unordered with them.
            torch.cuda.current_stream(dev).synchronize()
        self.session.run_with_iobinding(binding)
        binding.synchronize_outputs()  # written on onnxruntime's stream; torch reads them on its own
        return outs[0] if len(outs) == 1 else torch.cat([outs[0], outs[1].to(outs[0].dtype)], dim=1)


class TorchPredictor:
    """Run a PyTorch module (eval mode, no grad) as a :class:`Predictor`.

    Parameters
    ----------
    model : torch.nn.Module
        Maps ``(N, C, *spatial)`` to ``(N, K+1, *spatial)`` logits.
    metadata : ModelMetadata
        Classes, channels, normalisation, tile and divisor of the model.
    device : str
        A concrete torch device (``"cpu"``, ``"cuda"``); use :func:`pointseg_cli.devices.resolve_device`.
    precision : {"fp32", "fp16"}
        ``fp16`` runs under CUDA autocast (ignored on CPU).
    """

    def __init__(self, model: Any, metadata: ModelMetadata, *, device: str = "cpu", precision: str = "fp32") -> None:
        import torch

        check_choice("precision", precision, PRECISIONS)
        self._torch = torch
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self._meta = metadata
        self.precision = precision

    @classmethod
    def from_checkpoint(cls, path: str | Path, *, device: str = "cpu", precision: str = "fp32") -> TorchPredictor:
        """Load a training run directory or ``.pt`` checkpoint (``pointseg train`` output)."""
        from pointseg_cli.model.checkpoint import load_model
        from pointseg_cli.model.metadata import metadata_from_loaded

        loaded = load_model(path, device=device)
        return cls(loaded.model, metadata_from_loaded(loaded), device=device, precision=precision)

    @property
    def metadata(self) -> ModelMetadata:
        return self._meta

    @property
    def provider(self) -> str:
        return f"torch-{self.device.type}"

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return self._run(batch, all_outputs=False)["logits"]

    def predict_all(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        return self._run(batch, all_outputs=True)

    def _run(self, batch: np.ndarray, *, all_outputs: bool) -> dict[str, np.ndarray]:
        from pointseg_cli.nets.heads import forward_heads

        torch = self._torch
        _check_batch(batch, self._meta)
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
            run = (lambda t: forward_heads(self.model, t)) if all_outputs else (lambda t: {"logits": self.model(t)})
            if self.precision == "fp16" and self.device.type == "cuda":
                with torch.autocast("cuda", dtype=torch.float16):
                    ys = run(x)
            else:
                ys = run(x)
            names = self._meta.outputs if all_outputs else ("logits",)
            return {name: ys[name].float().cpu().numpy() for name in names}

    def predict_device(self, batch: np.ndarray, *, centers: bool = False) -> Any:
        """One batch's outputs as a torch tensor on the model's device (see :meth:`OrtPredictor.predict_device`)."""
        from pointseg_cli.nets.heads import forward_heads

        torch = self._torch
        _check_batch(batch, self._meta)
        if centers and not self._meta.has_centers:
            raise ModelError("the model has no centre output")
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
            half = self.precision == "fp16" and self.device.type == "cuda"
            with torch.autocast("cuda", dtype=torch.float16) if half else contextlib.nullcontext():
                ys = forward_heads(self.model, x) if centers else {"logits": self.model(x)}
            if not centers:
                return ys["logits"]
            return torch.cat([ys["logits"].float(), ys["centers"].float()], dim=1)


def make_predictor(
    model_path: str | Path, *, device: str = "auto", precision: str = "auto", threads: int | None = None
) -> Predictor:
    """Predictor for an ``.onnx`` file, or a training run dir / ``.pt`` checkpoint (PyTorch).

    Parameters
    ----------
    model_path : path-like
        ``.onnx`` file (onnxruntime) or run directory / ``.pt`` checkpoint (PyTorch).
    device : {"cpu", "cuda", "auto"}
        Pass the device resolved once by the caller
        (:func:`pointseg_cli.devices.resolve_device`); ``auto`` is resolved here for checkpoints
        and by the created session for ONNX models.
    precision : {"auto", "fp32", "fp16"}
        For checkpoints: ``auto`` is fp16 on CUDA, fp32 on the CPU. For ONNX models the precision
        is fixed at export; a value other than ``auto`` must match it.
    threads : int, optional
        Intra-op CPU threads of an ONNX model's session (the physical cores this process may use
        when None); several worker processes on one machine each take a share.
    """
    check_choice("precision", precision, PRECISION_CHOICES)
    path = Path(model_path)
    if path.suffix == ".onnx":
        if precision != "auto":
            meta = read_model_metadata(path)
            if meta.precision != precision:
                raise ConfigError(
                    f"--precision {precision} needs an {precision} ONNX model (pointseg export --precision "
                    f"{precision}); {path.name} is {meta.precision}"
                )
        return OrtPredictor(path, device=device, threads=threads)
    torch_device = devices.resolve_device(device, backend="torch")
    prec = "fp16" if precision == "fp16" or (precision == "auto" and torch_device == "cuda") else "fp32"
    return TorchPredictor.from_checkpoint(path, device=torch_device, precision=prec)
