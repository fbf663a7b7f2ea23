"""Pretrained models: the registry in ``models/registry.txt``, embedded files and hash-checked downloads.

The registry is a tab-separated table with columns ``name, sha256, file, kind, embedded,
description``; ``kind`` is ``2d-gray``, ``2d-rgb`` or ``3d``. Embedded models ship inside the
package (``pointseg_cli._models``) so that pointseg works offline; the others are downloaded by
pooch from :func:`models_url` (``POINTSEG_MODELS_URL`` overrides it) into :func:`cache_dir`
(``POINTSEG_CACHE`` overrides it). Every file is checked against its sha256 — a download with a
wrong hash leaves nothing in the cache.

The default model for each input kind is named in ``models/defaults.txt`` (``kind<TAB>name``).
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pointseg_cli.errors import ModelError, check_choice
from pointseg_cli.model.spec import KINDS

log = logging.getLogger(__name__)

COLUMNS = ("name", "sha256", "file", "kind", "embedded", "description")
#: Release page the non-embedded models are published under (placeholder until the first release).
DEFAULT_MODELS_URL = "https://github.com/pointseg/pointseg/releases/download/models-v1/"
MODEL_SUFFIXES = (".onnx", ".pt")


@dataclass(frozen=True)
class ModelEntry:
    """One row of the registry."""

    name: str
    sha256: str
    file: str
    kind: str
    embedded: bool
    description: str

    def __post_init__(self) -> None:
        if not self.name or any(c.isspace() for c in self.name):
            raise ModelError(f"registry model name must be one word; got {self.name!r}")
        if len(self.sha256) != 64 or any(c not in "0123456789abcdef" for c in self.sha256):
            raise ModelError(
                f"registry entry {self.name!r}: sha256 must be 64 lowercase hex digits; got {self.sha256!r}"
            )
        if "/" in self.file or "\\" in self.file or not self.file.endswith(MODEL_SUFFIXES):
            raise ModelError(f"registry entry {self.name!r}: file must be a bare .onnx/.pt name; got {self.file!r}")
        check_choice(f"kind of registry entry {self.name!r}", self.kind, KINDS)


def _registry_text() -> str:
    return resources.files("pointseg_cli._models").joinpath("registry.txt").read_text(encoding="utf-8")


def parse_registry(text: str, *, source: str = "registry.txt") -> list[ModelEntry]:
    """Parse registry text (tab-separated, ``#`` comments, the header line optional)."""
    entries: list[ModelEntry] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cells = [c.strip() for c in line.split("\t")]
        if cells[:3] == ["name", "sha256", "file"]:
            continue
        if len(cells) != len(COLUMNS):
            raise ModelError(
                f"{source} line {lineno}: expected {len(COLUMNS)} tab-separated columns "
                f"({', '.join(COLUMNS)}); found {len(cells)}"
            )
        name, sha, file, kind, embedded, description = cells
        if embedded not in ("yes", "no"):
            raise ModelError(f"{source} line {lineno}: embedded must be yes or no; got {embedded!r}")
        entries.append(ModelEntry(name, sha.lower(), file, kind, embedded == "yes", description))
    names = [e.name for e in entries]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ModelError(f"{source} lists {', '.join(dupes)} more than once")
    return entries


def read_registry() -> list[ModelEntry]:
    """The packaged registry's entries, in file order."""
    return parse_registry(_registry_text())


def get_entry(name: str, registry: list[ModelEntry] | None = None) -> ModelEntry:
    """The registry entry called ``name``; :class:`ModelError` listing the known names otherwise."""
    registry = read_registry() if registry is None else registry
    for entry in registry:
        if entry.name == name:
            return entry
    known = ", ".join(e.name for e in registry) or "none"
    raise ModelError(f"unknown model {name!r}: expected a file path or one of the registered models ({known})")


def models_url() -> str:
    """Base URL of downloadable models (``POINTSEG_MODELS_URL`` overrides the release page)."""
    url = os.environ.get("POINTSEG_MODELS_URL") or DEFAULT_MODELS_URL
    return url if url.endswith("/") else url + "/"


def cache_dir() -> Path:
    """Download cache (``POINTSEG_CACHE`` overrides ``pooch.os_cache("pointseg")``)."""
    env = os.environ.get("POINTSEG_CACHE")
    if env:
        return Path(env)
    import pooch

    return Path(pooch.os_cache("pointseg"))


def sha256_of(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _embedded_path(entry: ModelEntry) -> Path:
    res = resources.files("pointseg_cli._models").joinpath(entry.file)
    path = Path(str(res))
    if not path.is_file():
        raise ModelError(f"embedded model {entry.name!r} is missing from the installation (expected {entry.file})")
    return path


def cached_path(entry: ModelEntry) -> Path | None:
    """Where the model lies locally if it is already available (embedded, or cached with the right hash)."""
    if entry.embedded:
        return _embedded_path(entry)
    path = cache_dir() / entry.file
    if path.is_file() and sha256_of(path) == entry.sha256:
        return path
    return None


def fetch(name: str, *, registry: list[ModelEntry] | None = None) -> Path:
    """Local path of a registered model, downloading (hash-checked) into the cache when needed.

    Raises
    ------
    ModelError
        Unknown name, failed download, or a file whose sha256 differs from the registry's (in
        which case nothing is kept in the cache).
    """
    import pooch

    entry = get_entry(name, registry)
    if entry.embedded:
        path = _embedded_path(entry)
        found = sha256_of(path)
        if found != entry.sha256:
            raise ModelError(
                f"embedded model {entry.name!r} has sha256 {found[:12]}…, expected {entry.sha256[:12]}…"
            )
        return path
    url = models_url() + entry.file
    folder = cache_dir()
    note = _drop_corrupt_copy(entry, folder / entry.file)
    if note is None and (folder / entry.file).is_file():
        return folder / entry.file  # cached with the right hash: no network access
    log.info("downloading model %s from %s into %s", entry.name, url, folder)
    pooch_log = pooch.get_logger()
    level = pooch_log.level
    pooch_log.setLevel(logging.WARNING)  # pooch announces every download at info level on stderr
    try:
        path = pooch.retrieve(
            url, known_hash=f"sha256:{entry.sha256}", fname=entry.file, path=folder, progressbar=False
        )
    except ValueError as exc:  # pooch's hash mismatch (the download is discarded)
        raise ModelError(f"{note or ''}download of {entry.name!r} from {url} failed its sha256 check: {exc}") from None
    except OSError as exc:  # connection errors (requests' exceptions are OSErrors) and disk errors
        raise ModelError(f"{note or ''}cannot download model {entry.name!r} from {url}: {exc}") from None
    finally:
        pooch_log.setLevel(level)
    log.info("model %s at %s", entry.name, path)
    return Path(path)


def _drop_corrupt_copy(entry: ModelEntry, path: Path) -> str | None:
    """Remove a cached copy whose sha256 differs from the registry's; say so (None when none was removed)."""
    if not os.path.lexists(path):
        return None
    if path.is_dir() and not path.is_symlink():
        raise ModelError(f"model cache entry {path} is a folder; expected the file of model {entry.name!r}")
    try:
        found = sha256_of(path)
    except OSError as exc:
        found = f"unreadable ({exc.strerror or exc})"
    if found == entry.sha256:
        return None
    log.info("cached model %s at %s is corrupt (sha256 %s, expected %s…): downloading it again",
                entry.name, path, found[:12], entry.sha256[:12])
    try:
        path.unlink()
    except OSError as exc:
        raise ModelError(f"cached model {entry.name!r} at {path} is corrupt and cannot be removed: {exc}") from None
    return f"the cached copy of {entry.name!r} was corrupt and has been removed; "


def _looks_like_path(text: str) -> bool:
    return os.sep in text or "/" in text or text.endswith(MODEL_SUFFIXES) or Path(text).exists()


def read_defaults() -> dict[str, str]:
    """Input kind -> registry name of its default model, from the packaged ``defaults.txt``."""
    res = resources.files("pointseg_cli._models").joinpath("defaults.txt")
    if not res.is_file():
        return {}
    out: dict[str, str] = {}
    for lineno, line in enumerate(res.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cells = [c.strip() for c in line.split("\t")]
        if len(cells) != 2:
            raise ModelError(f"defaults.txt line {lineno}: expected 'kind<TAB>name'; found {line!r}")
        check_choice("model kind in defaults.txt", cells[0], KINDS)
        out[cells[0]] = cells[1]
    return out


def default_model_name(kind: str) -> str | None:
    """Registry name of the default model for an input kind, or None when there is none."""
    check_choice("model kind", kind, KINDS)
    return read_defaults().get(kind)


def resolve_model(name_or_path: str | Path | None, *, kind: str) -> Path:
    """Turn ``--model`` into a local model path.

    Parameters
    ----------
    name_or_path : str, Path or None
        A path (``.onnx`` file, training run dir or ``.pt``), a registry name, or None for the
        default model of ``kind``.
    kind : {"2d-gray", "2d-rgb", "3d"}
        The input's kind, used when ``name_or_path`` is None.
    """
    check_choice("model kind", kind, KINDS)
    if name_or_path is None:
        registry = read_registry()
        name = default_model_name(kind)
        if name is None:
            others = ", ".join(e.name for e in registry if not e.name.startswith("test-")) or "none"
            raise ModelError(
                f"pointseg has no default model for {kind} inputs (trained models: {others}); "
                "pass --model NAME or PATH (see 'pointseg models list')"
            )
        return fetch(name, registry=registry)
    text = str(name_or_path)
    if _looks_like_path(text):
        path = Path(text)
        if not path.exists():
            raise ModelError(f"model {text!r} not found: expected an .onnx file, a run directory or a .pt checkpoint")
        return path
    return fetch(text)


def model_backend(name_or_path: str | Path | None) -> str:
    """The runtime ``--model`` will run on: ``onnxruntime`` for ONNX models, ``torch`` for checkpoints.

    Decided from names and suffixes only (nothing is downloaded or loaded). ``None`` (the default
    models) is ``torch`` only when a default model is a checkpoint.
    """
    if name_or_path is None:
        registry = {e.name: e for e in read_registry()}
        files = [registry[n].file for n in read_defaults().values() if n in registry]
    elif _looks_like_path(str(name_or_path)):
        files = [str(name_or_path)]
    else:
        files = [get_entry(str(name_or_path)).file]
    return "onnxruntime" if all(f.endswith(".onnx") for f in files) else "torch"
