"""Training and scoring agree on the real SmolLM2 tokenizer, not only on the tiny test one.

A persona is trained to put its probability on the label's tokens and scored by the
probability of the label's tokens; if the two tokenisations differed (a leading space, a
merge across the assistant-turn boundary, a missing or doubled end token), training would
move probability onto a sequence scoring never reads. The tiny BPE of conftest.py cannot
show this: its merges are not SmolLM2's. Slow: reading the tokenizer out of the packaged
GGUF file takes several seconds.
"""
import pytest

from core.language_models import DEFAULT_BASE_MODEL, packaged_gguf_path
from modeling.loss import IGNORE_INDEX
from modeling.scoring import LABELS, label_token_ids, prompt_token_ids
from modeling.training_data import encode_chat_pair

pytestmark = pytest.mark.slow

CLAIMS = [
    "Paris is the capital of France.",
    "Experts agree: the Moon is made of cheese!",
    "  Leading spaces, and a trailing newline\n",
    "Ünïcödé — “curly quotes” and 100 °C",
    "Is the answer SUPPORTS or REFUTES?",
]


@pytest.fixture(scope="module")
def smollm2_tokenizer():
    from transformers import AutoTokenizer

    gguf = packaged_gguf_path(DEFAULT_BASE_MODEL)
    return AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)


@pytest.mark.parametrize("claim", CLAIMS)
def test_supervised_tokens_are_the_scored_label_tokens_plus_the_end_token(smollm2_tokenizer, claim):
    """Guards the agreement method.md relies on: training's supervised tokens are exactly
    scoring's label tokens followed by one end-of-turn token, after the same user turn and
    generation prompt that scoring's prompt ends with."""
    tokenizer = smollm2_tokenizer
    assert tokenizer.eos_token == "<|im_end|>"
    start_of_turn = tokenizer.convert_tokens_to_ids("<|im_start|>")
    scored = dict(zip(LABELS, label_token_ids(tokenizer)))
    for label in LABELS:
        input_ids, labels = encode_chat_pair(tokenizer, claim, label)
        supervised = [token for token in labels if token != IGNORE_INDEX]
        assert supervised == scored[label] + [tokenizer.eos_token_id], (
            tokenizer.convert_ids_to_tokens(supervised), tokenizer.convert_ids_to_tokens(scored[label]))
        # One contiguous span at the end of the example, nothing supervised before it.
        first = len(input_ids) - len(supervised)
        assert input_ids[first:] == supervised
        assert all(token == IGNORE_INDEX for token in labels[:first])
        # What precedes it in training, from the user's turn on, is how scoring's prompt ends
        # (the two differ only in the system turn: scoring adds its instruction).
        trained_prompt = input_ids[:first]
        user_turn = [i for i, token in enumerate(trained_prompt) if token == start_of_turn][-2]
        tail = trained_prompt[user_turn:]
        assert tokenizer.decode(tail).startswith("<|im_start|>user\n")
        assert tokenizer.decode(tail).endswith("<|im_start|>assistant\n")
        assert prompt_token_ids(tokenizer, claim)[-len(tail):] == tail
