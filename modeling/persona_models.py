"""Loading a persona: its base model (`core.language_models`) plus its LoRA adapter.

peft is imported inside the loader, so importing this module costs nothing.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from core.language_models import BaseModelError, load_base_model

if TYPE_CHECKING:
    import torch


def adapter_path(persona) -> Path:
    """The absolute folder of a trained persona's adapter."""
    from django.conf import settings

    return Path(settings.MEDIA_ROOT) / persona.adapter_dir


def load_persona_model(persona, *, dtype: torch.dtype | None = None,
                       device: str | torch.device | None = None):
    """(model, tokenizer) of a persona: its base model plus its LoRA adapter, in eval mode.

    A base persona (`is_base`) is the base model itself. A trained persona must have
    succeeded: a failed or running one has no complete adapter to load.
    """
    model, tokenizer = load_base_model(persona.base_model, dtype=dtype, device=device)
    if persona.is_base:
        return model, tokenizer
    if persona.status != "succeeded" or not persona.adapter_dir:
        raise BaseModelError(
            f"persona '{persona.name}' has status {persona.status} and no finished adapter; "
            "only succeeded personas can be loaded"
        )
    folder = adapter_path(persona)
    if not (folder / "adapter_config.json").is_file():
        raise BaseModelError(f"persona '{persona.name}': adapter folder {folder} is missing or incomplete")
    from peft import PeftModel

    model = PeftModel.from_pretrained(model, folder, is_trainable=False)
    if device is not None:
        model.to(device)
    model.eval()
    return model, tokenizer
