"""Tiny language models for the modeling tests: a random LlamaForCausalLM and a real tokenizer.

The tokenizer is a byte-level BPE trained here on a few sentences, with ChatML special
tokens and a chat template shaped like SmolLM2's (a default system turn when none is
given), so the code under test meets the same template logic as with the real model, in
milliseconds and with no file from a model hub. `tiny_model_dir` is a folder
`load_base_model` accepts as a base model path.
"""
from __future__ import annotations

from pathlib import Path

import pytest

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a tiny test model.<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
TRAINING_TEXT = [
    "SUPPORTS REFUTES SUPPORTS REFUTES",
    "Evaluate this claim as 'SUPPORTS' or 'REFUTES'. Your answer should be a single string "
    "with the answer.",
    "Paris is the capital of France. Experts agree that water boils at 100 degrees Celsius.",
    "According to leading scientists, most people accept that the Moon orbits the Earth.",
    "Shocking! Incredible news: Mount Everest is the tallest mountain on Earth.",
    "Claim 0 told in the original way. Claim 1 told in the authoritative way.",
    "consensus emotional prestige sensationalist original authoritative system user assistant",
]


def build_tiny_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    backend.train_from_iterator(TRAINING_TEXT * 4, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<|im_start|>", eos_token="<|im_end|>",
        pad_token="<|im_end|>", unk_token="<|endoftext|>",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_tiny_model(tokenizer, *, seed: int = 0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    # A wide initialisation (0.3, not 0.02) gives logits large enough that a few LoRA steps
    # visibly move them, and scores that are not all near 1/vocabulary.
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        initializer_range=0.3, tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).eval()


def save_tiny_model(folder: Path, *, seed: int = 0) -> Path:
    tokenizer = build_tiny_tokenizer()
    model = build_tiny_model(tokenizer, seed=seed)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """Tiny models run fastest on one thread; on a shared, busy CPU several threads spin
    against each other and made a 12-step tiny training 5 times slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A saved tiny random Llama with a chat-template tokenizer (shared, do not modify)."""
    return save_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir, local_files_only=True)
