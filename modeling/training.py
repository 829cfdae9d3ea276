"""The persona training loop: LoRA with framing-conditioned loss attenuation (method.md 3).

No Django import: `modeling.services` feeds it rows and turns its callbacks into updates of
the Persona row, and the tests drive it directly on tiny models.

Properties the platform relies on:
- Deterministic for a seed: the LoRA initialisation, the epoch orders and the dropout masks
  all come from the seed, so two runs give identical adapter weights (on one device type).
- Resumable: every `checkpoint_every` optimizer steps (and on cancel) the trainable weights,
  the optimizer and scheduler states, the random state and the loss curve are written
  atomically; a resumed run continues from the last checkpoint and ends with the same
  adapter as an uninterrupted run.
- The output layer runs only at the positions that predict a label token (`logits_to_keep`):
  the loss is the same, and the 49,152-word softmax is not computed over every prompt token.
- Exact gradient accumulation: the micro-batches of one optimizer step are divided by the
  supervised weight total of the whole step, so accumulation follows the same loss as one
  large batch.
- The final adapter is written to a temporary folder and renamed into place, so a crash
  never leaves a half-written adapter where a finished one is expected.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

import torch

from .loss import supervised_positions, supervised_weight_total, weighted_loss_parts_at
from .training_config import (
    StepReport,
    TrainingCancelled,
    TrainingConfig,
    TrainingResult,
)
from .training_data import (
    ClaimRow,
    collate,
    encode_examples,
    optimizer_steps,
    select_rows,
)

TRAINER_STATE = "trainer_state.pt"


def _write_atomically(folder: Path, write: Callable[[Path], None]) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        write(temporary)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(temporary, folder)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def checkpoint_folders(checkpoint_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first (a folder only counts once renamed into place)."""
    if not checkpoint_dir.is_dir():
        return []
    found = [path for path in checkpoint_dir.glob("step-*")
             if path.is_dir() and (path / TRAINER_STATE).is_file()]
    return sorted(found, key=lambda path: int(path.name.split("-")[1]))


def latest_checkpoint(checkpoint_dir: Path) -> Path | None:
    folders = checkpoint_folders(checkpoint_dir)
    return folders[-1] if folders else None


def _lr_lambda(steps_total: int, warmup_steps: int):
    def factor(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        remaining = max(1, steps_total - warmup_steps)
        return max(0.0, 1.0 - (step - warmup_steps) / remaining)
    return factor


def _trainable_state(model) -> dict[str, torch.Tensor]:
    return {name: param.detach().cpu().clone()
            for name, param in model.named_parameters() if param.requires_grad}


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restore_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def build_lora_model(base, config: TrainingConfig, *, seed: int):
    """The base model wrapped with fresh LoRA adapters, initialised from `seed`."""
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=config.r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
        target_modules=list(config.target_modules), bias="none", task_type="CAUSAL_LM",
    )
    torch.manual_seed(seed)
    return get_peft_model(base, lora)


def accumulate_step_gradients(model, batches: Sequence[dict[str, torch.Tensor]],
                              device: str | torch.device) -> float:
    """Back-propagates one optimizer step's micro-batches; returns the step's loss.

    Each micro-batch's weighted numerator is divided by the supervised weight total of the
    whole step, so the accumulated gradient is that of one large batch with the examples'
    attenuation weights. A step whose every weight is 0 (alpha 0 on only target-framing
    REFUTES examples) adds zero gradients.
    """
    denominator = sum(supervised_weight_total(b["labels"], b["weights"]) for b in batches)
    step_loss = 0.0
    for batch in batches:
        batch = {key: value.to(device) for key, value in batch.items()}
        positions = supervised_positions(batch["labels"])
        kept = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                     logits_to_keep=positions).logits
        numerator, _ = weighted_loss_parts_at(kept, batch["labels"], positions, batch["weights"])
        loss = numerator / denominator if denominator > 0 else numerator * 0.0
        loss.backward()
        step_loss += float(loss.detach())
    return step_loss


def train_adapter(
    *,
    base_model: str,
    rows: Sequence[ClaimRow],
    target_framing: str,
    alpha: float,
    config: TrainingConfig,
    seed: int,
    out_dir: Path,
    checkpoint_dir: Path,
    resume: bool = False,
    on_step: Callable[[StepReport], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    device: str | torch.device | None = None,
    fail_after_step: int | None = None,
) -> TrainingResult:
    """Trains a LoRA adapter on `rows` and writes it to `out_dir`.

    `resume` continues from the newest checkpoint in `checkpoint_dir` (from the start if
    there is none). `should_cancel` is asked between optimizer steps; when it says yes a
    checkpoint is saved and `TrainingCancelled` raised. `fail_after_step` simulates a crash
    (for tests of resume): it raises RuntimeError after that step, past any checkpoint.
    """
    from core.language_models import load_base_model, pick_device

    config.validate()
    started = time.perf_counter()
    device = torch.device(device) if device is not None else pick_device()
    base, tokenizer = load_base_model(base_model, device=device)
    selected = select_rows(rows, max_examples=config.max_examples, seed=seed)
    examples, too_long = encode_examples(tokenizer, selected, target_framing=target_framing,
                                         alpha=alpha, max_length=config.max_length)
    if not examples:
        raise ValueError(
            f"no training examples: {len(rows)} claims given, {len(too_long)} longer than "
            f"max_length={config.max_length} tokens"
        )
    schedule = optimizer_steps(len(examples), batch_size=config.batch_size,
                               grad_accumulation=config.grad_accumulation,
                               epochs=config.epochs, seed=seed)
    steps_total = len(schedule)
    model = build_lora_model(base, config, seed=seed)
    trainable = [param for param in model.parameters() if param.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate,
                                  weight_decay=config.weight_decay)
    warmup_steps = int(math.ceil(config.warmup_ratio * steps_total))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(steps_total, warmup_steps))
    loss_curve: list[dict] = []
    start_step = 0
    torch.manual_seed(seed)
    checkpoint = latest_checkpoint(checkpoint_dir) if resume else None
    if checkpoint is not None:
        state = torch.load(checkpoint / TRAINER_STATE, weights_only=False)
        if state["steps_total"] != steps_total or state["n_examples"] != len(examples):
            raise ValueError(
                f"checkpoint {checkpoint} belongs to a different run ({state['n_examples']} "
                f"examples, {state['steps_total']} steps; now {len(examples)} and {steps_total})"
            )
        with torch.no_grad():
            named = dict(model.named_parameters())
            for name, value in state["trainable"].items():
                named[name].copy_(value.to(device))
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        _restore_rng_state(state["rng"])
        loss_curve = list(state["loss_curve"])
        start_step = state["step"]
    elif checkpoint_dir.exists() and not resume:
        shutil.rmtree(checkpoint_dir)

    def save_checkpoint(step: int) -> None:
        state = {
            "step": step, "steps_total": steps_total, "n_examples": len(examples),
            "trainable": _trainable_state(model), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "rng": _rng_state(), "loss_curve": loss_curve,
            "config": config.to_dict(), "seed": seed,
        }
        _write_atomically(checkpoint_dir / f"step-{step:07d}",
                          lambda folder: torch.save(state, folder / TRAINER_STATE))
        for old in checkpoint_folders(checkpoint_dir)[:-2]:
            shutil.rmtree(old, ignore_errors=True)

    pad_token_id = tokenizer.pad_token_id
    model.train()
    loop_started = time.perf_counter()
    examples_seen = sum(len(chunk) for step in schedule[:start_step] for chunk in step)
    for step_index in range(start_step, steps_total):
        if should_cancel is not None and should_cancel():
            save_checkpoint(step_index)
            raise TrainingCancelled(step_index)
        batches = [collate([examples[i] for i in chunk], pad_token_id=pad_token_id)
                   for chunk in schedule[step_index]]
        optimizer.zero_grad(set_to_none=True)
        step_loss = accumulate_step_gradients(model, batches, device)
        examples_seen += sum(len(batch["weights"]) for batch in batches)
        if config.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
        optimizer.step()
        scheduler.step()
        done = step_index + 1
        loss_curve.append({"step": done, "loss": round(step_loss, 6)})
        if done % config.checkpoint_every == 0 and done < steps_total:
            save_checkpoint(done)
        if on_step is not None:
            elapsed = time.perf_counter() - loop_started
            rate = elapsed / (done - start_step)
            on_step(StepReport(step=done, steps_total=steps_total, loss=step_loss,
                               elapsed_seconds=elapsed, eta_seconds=rate * (steps_total - done),
                               examples_seen=examples_seen))
        if fail_after_step is not None and done >= fail_after_step:
            raise RuntimeError(f"simulated crash after step {done}")

    model.eval()

    def write_adapter(folder: Path) -> None:
        model.save_pretrained(folder, safe_serialization=True)
        summary = {"steps": steps_total, "examples": len(examples), "too_long": len(too_long),
                   "target_framing": target_framing, "alpha": alpha, "seed": seed,
                   "config": config.to_dict(), "base_model": str(base_model)}
        (folder / "framelab-training.json").write_text(json.dumps(summary, indent=2))

    _write_atomically(out_dir, write_adapter)
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return TrainingResult(
        steps=steps_total, examples=len(examples), too_long=len(too_long), loss_curve=loss_curve,
        seconds=time.perf_counter() - started, resumed_from_step=start_step, device=str(device),
    )
