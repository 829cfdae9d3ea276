"""Benchmark persona training: dynamic padding against FrameRef's fixed 256-token padding.

Run from the repository root:

    .venv/bin/python bench/training.py [--model smollm2-135m-instruct] [--claims 32]
                                       [--batch-size 8] [--repeats 2] [--threads N]
                                       [--json PATH]

On the same model, the same LoRA initialisation and the same batches of the demo dataset's
framed claims (every framing, authoritative persona at alpha 0.3), in one process:

1. platform: `modeling.training`'s step: each micro-batch padded to its own longest
   example, and the output layer run only at the positions that predict a label token;
2. FrameRef: every example padded to 256 tokens, logits over the whole sequence, the same
   weighted token loss.

It reports examples per second of each (full optimizer steps: forward, backward, AdamW),
the speed-up (target: at least 3x), and the largest difference between the two methods'
losses on the same batches and weights (they compute the same quantity; must be within
1e-4). Methods alternate within each repeat and the median is reported, since the
machine may be shared. The machine (CPU, threads, load) is printed with it.

Benchmarks are not part of the test run; see bench/README.md.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from machine import cpu_model  # noqa: E402  (bench/machine.py)

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "platform"), str(ROOT)]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

TARGET_SPEEDUP = 3.0
TOLERANCE = 1e-4
FIXED_LENGTH = 256


def demo_rows(n: int):
    from modeling.training_data import ClaimRow

    path = ROOT / "annotation" / "demo_data" / "framelab-demo.jsonl"
    rows = []
    for line in path.open(encoding="utf-8"):
        record = json.loads(line)
        rows.append(ClaimRow(record["claim_id"], record["claim_id"].split(":")[0],
                             record["restated_claim"], record["true_label"], record["framing_type"]))
    return (rows * (n // len(rows) + 1))[:n]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--claims", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    import django

    django.setup()
    import torch

    from core.language_models import load_base_model, pick_device
    from modeling.loss import (
        supervised_positions,
        weighted_loss_parts,
        weighted_loss_parts_at,
    )
    from modeling.training import TrainingConfig, build_lora_model
    from modeling.training_data import collate, encode_examples

    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device()
    base, tokenizer = load_base_model(args.model, device=device)
    examples, too_long = encode_examples(tokenizer, demo_rows(args.claims),
                                         target_framing="authoritative", alpha=0.3,
                                         max_length=FIXED_LENGTH)
    batches = [examples[i:i + args.batch_size] for i in range(0, len(examples), args.batch_size)]
    config = TrainingConfig()
    model = build_lora_model(base, config, seed=0).to(device)
    model.train()
    initial = {k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad}
    pad = tokenizer.pad_token_id
    machine = {
        "cpu": cpu_model(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "load_average_before": os.getloadavg()[0], "torch": torch.__version__,
        "device": str(device), "model": args.model,
    }
    lengths = [len(e) for e in examples]
    print(f"{len(examples)} examples (mean {statistics.mean(lengths):.0f} tokens, longest "
          f"{max(lengths)}), batches of {args.batch_size}; {machine['cpu']}, "
          f"{machine['torch_threads']} torch threads, load average "
          f"{machine['load_average_before']:.1f}, {device}", flush=True)

    def fixed_batch(chunk):
        batch = collate(chunk, pad_token_id=pad)
        extra = FIXED_LENGTH - batch["input_ids"].shape[1]
        batch["input_ids"] = torch.nn.functional.pad(batch["input_ids"], (0, extra), value=pad)
        batch["attention_mask"] = torch.nn.functional.pad(batch["attention_mask"], (0, extra))
        batch["labels"] = torch.nn.functional.pad(batch["labels"], (0, extra), value=-100)
        return batch

    def loss_dynamic(chunk):
        batch = {k: v.to(device) for k, v in collate(chunk, pad_token_id=pad).items()}
        positions = supervised_positions(batch["labels"])
        kept = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                     logits_to_keep=positions).logits
        numerator, denominator = weighted_loss_parts_at(kept, batch["labels"], positions,
                                                        batch["weights"])
        return numerator / denominator

    def loss_fixed(chunk):
        batch = {k: v.to(device) for k, v in fixed_batch(chunk).items()}
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        numerator, denominator = weighted_loss_parts(logits, batch["labels"], batch["weights"])
        return numerator / denominator

    def reset():
        with torch.no_grad():
            for name, param in model.named_parameters():
                if name in initial:
                    param.copy_(initial[name])

    # Same weights, same batches: the two losses must agree (dropout off for the check).
    model.eval()
    with torch.no_grad():
        differences = [abs(float(loss_dynamic(c)) - float(loss_fixed(c))) for c in batches]
    model.train()
    max_difference = max(differences)

    def run(loss_function) -> float:
        reset()
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                      lr=config.learning_rate)
        torch.manual_seed(0)
        started = time.perf_counter()
        for chunk in batches:
            optimizer.zero_grad(set_to_none=True)
            loss_function(chunk).backward()
            optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return len(examples) / (time.perf_counter() - started)

    rates = {"platform": [], "fixed_256": []}
    for repeat in range(args.repeats):
        for name, function in (("platform", loss_dynamic), ("fixed_256", loss_fixed)):
            rates[name].append(run(function))
            print(f"repeat {repeat + 1}: {name}: {rates[name][-1]:.2f} examples/s", flush=True)
    platform_rate = statistics.median(rates["platform"])
    fixed_rate = statistics.median(rates["fixed_256"])
    speedup = platform_rate / fixed_rate
    machine["load_average_after"] = os.getloadavg()[0]
    verdict = ("met" if speedup >= TARGET_SPEEDUP
               else f"NOT met: {speedup:.2f}x of {TARGET_SPEEDUP:.0f}x "
                    f"({TARGET_SPEEDUP / speedup:.2f}x short)")
    print(f"platform (dynamic padding, label-position logits): {platform_rate:.2f} examples/s")
    print(f"FrameRef (fixed {FIXED_LENGTH}-token padding):       {fixed_rate:.2f} examples/s")
    print(f"speed-up {speedup:.2f}x (target {TARGET_SPEEDUP:.0f}x: {verdict}); largest loss "
          f"difference {max_difference:.2e} (tolerance {TOLERANCE:g}: "
          f"{'ok' if max_difference <= TOLERANCE else 'EXCEEDED'}); load average "
          f"{machine['load_average_before']:.1f} -> {machine['load_average_after']:.1f}")
    if args.json:
        args.json.write_text(json.dumps({
            "machine": machine, "examples": len(examples), "too_long": len(too_long),
            "batch_size": args.batch_size, "rates": rates, "platform_examples_per_second":
            platform_rate, "fixed_examples_per_second": fixed_rate, "speedup": speedup,
            "max_loss_difference": max_difference}, indent=2))
    return 0 if max_difference <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
