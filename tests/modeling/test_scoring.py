"""The single-pass scorer against the textbook per-claim, per-label computation."""
import numpy as np
import pytest
import torch

from modeling.scoring import (
    LABELS,
    SYSTEM_INSTRUCTION,
    ClaimScorer,
    ScoringError,
    label_token_ids,
    prompt_token_ids,
    score_claims_generate,
    score_claims_naive,
    shared_prefix_ids,
)
from tests.modeling.conftest import build_tiny_model, build_tiny_tokenizer

CLAIMS = [
    "Paris is the capital of France.",
    "x",
    "According to leading scientists, water boils at 100 degrees Celsius at sea level, "
    "as most people accept.",
    "Shocking! The Moon orbits the Earth.",
    "Experts agree that Mount Everest is the tallest mountain on Earth.",
    "Claim 1 told in the authoritative way.",
    "SUPPORTS",
]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models gain nothing from threads, and lose a lot on a busy shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tokenizer():
    return build_tiny_tokenizer()


@pytest.fixture(scope="module")
def model(tokenizer):
    model = build_tiny_model(tokenizer, seed=3)
    # Larger weights than the default initialisation: label probabilities then differ by
    # orders of magnitude between claims, so a mix-up of rows could not pass unnoticed.
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(2.0)
    return model


@pytest.fixture(scope="module")
def naive(model, tokenizer):
    return score_claims_naive(model, tokenizer, CLAIMS)


def test_prompt_is_the_chat_template_with_the_instruction_and_generation_prompt(tokenizer):
    text = tokenizer.decode(prompt_token_ids(tokenizer, "The sky is blue."))
    assert text.startswith("<|im_start|>system\n" + SYSTEM_INSTRUCTION + "<|im_end|>")
    assert text.endswith("<|im_start|>user\nThe sky is blue.<|im_end|>\n<|im_start|>assistant\n")
    prefix = shared_prefix_ids(tokenizer)
    assert len(prefix) > 10
    assert prompt_token_ids(tokenizer, "Anything at all")[:len(prefix)] == prefix
    supports, refutes = label_token_ids(tokenizer)
    assert tokenizer.decode(supports) == "SUPPORTS" and tokenizer.decode(refutes) == "REFUTES"


@pytest.mark.parametrize("batch_size", [1, 3, 16])
def test_single_pass_equals_naive_computation(model, tokenizer, naive, batch_size):
    fast = ClaimScorer(model, tokenizer, batch_size=batch_size).score(CLAIMS)
    # float32 forward passes: agreement to float32 precision in log space, 1e-5 in probability.
    np.testing.assert_allclose(fast.log_p_supports, naive.log_p_supports, atol=1e-5, rtol=1e-6)
    np.testing.assert_allclose(fast.log_p_refutes, naive.log_p_refutes, atol=1e-5, rtol=1e-6)
    np.testing.assert_allclose(fast.p_supports_norm, naive.p_supports_norm, atol=1e-5)
    # The claims really differ, so agreement is not an accident of equal rows.
    assert len(np.unique(np.round(naive.log_p_supports, 3))) >= len(CLAIMS) - 1


def test_claims_that_do_not_share_the_prefix_are_scored_in_full(model, tokenizer, naive):
    scorer = ClaimScorer(model, tokenizer, batch_size=4)
    scorer.prefix_ids = [tokenizer.eos_token_id] * 3  # no claim starts like this
    fast = scorer.score(CLAIMS)
    np.testing.assert_allclose(fast.log_p_supports, naive.log_p_supports, atol=1e-5, rtol=1e-6)
    np.testing.assert_allclose(fast.log_p_refutes, naive.log_p_refutes, atol=1e-5, rtol=1e-6)


def test_every_claim_gets_a_valid_label_in_the_input_order(model, tokenizer, naive):
    order = np.random.default_rng(0).permutation(len(CLAIMS))
    progress = []
    scores = ClaimScorer(model, tokenizer, batch_size=2).score(
        [CLAIMS[i] for i in order], progress=lambda done, total: progress.append((done, total)))
    assert len(scores) == len(CLAIMS)
    np.testing.assert_allclose(scores.log_p_supports, naive.log_p_supports[order], atol=1e-5)
    assert set(scores.predicted_label) <= set(LABELS)
    expected = np.where(scores.p_supports >= scores.p_refutes, "SUPPORTS", "REFUTES")
    assert list(scores.predicted_label) == list(expected)
    np.testing.assert_allclose(scores.confidence, np.maximum(scores.p_supports, scores.p_refutes))
    assert progress[-1] == (len(CLAIMS), len(CLAIMS))
    assert [done for done, _ in progress] == sorted(done for done, _ in progress)


def test_a_lora_adapter_is_scored_through_the_peft_wrapper(tokenizer):
    from peft import LoraConfig, get_peft_model

    base = build_tiny_model(tokenizer, seed=5)
    plain = score_claims_naive(base, tokenizer, CLAIMS[:3])
    torch.manual_seed(0)
    persona = get_peft_model(build_tiny_model(tokenizer, seed=5), LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
        init_lora_weights=False)).eval()
    naive = score_claims_naive(persona, tokenizer, CLAIMS[:3])
    fast = ClaimScorer(persona, tokenizer, batch_size=2).score(CLAIMS[:3])
    np.testing.assert_allclose(fast.log_p_supports, naive.log_p_supports, atol=1e-5, rtol=1e-6)
    # The adapter is active: its scores are not the base model's.
    assert np.abs(naive.log_p_supports - plain.log_p_supports).max() > 1e-3


def test_frameref_procedure_reports_the_claims_it_would_drop(model, tokenizer, naive):
    generated = score_claims_generate(model, tokenizer, CLAIMS[:3], max_new_tokens=3)
    np.testing.assert_allclose(generated.scores.log_p_supports, naive.log_p_supports[:3], atol=1e-6)
    # A random model does not answer with a label: FrameRef would have dropped these claims,
    # while the scorer still gives each one a label.
    assert generated.dropped.all()


def test_empty_input_and_bad_tokenizer(model, tokenizer):
    assert len(ClaimScorer(model, tokenizer).score([])) == 0
    with pytest.raises(ScoringError, match="batch size"):
        ClaimScorer(model, tokenizer, batch_size=0)
    no_template = build_tiny_tokenizer()
    no_template.chat_template = None
    with pytest.raises(ScoringError, match="no chat template"):
        prompt_token_ids(no_template, "a claim")


def test_several_adapters_in_mixed_batches_equal_each_persona_alone(tokenizer):
    from peft import LoraConfig, get_peft_model

    config = dict(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                  init_lora_weights=False)
    torch.manual_seed(1)
    model = get_peft_model(build_tiny_model(tokenizer, seed=7), LoraConfig(**config),
                           adapter_name="auth")
    model.add_adapter("cons", LoraConfig(**config))
    model.eval()
    claims = CLAIMS[:4]
    expected = {}
    for adapter in ("auth", "cons"):
        model.set_adapter(adapter)
        expected[adapter] = score_claims_naive(model, tokenizer, claims)
    with model.disable_adapter():
        expected["__base__"] = score_claims_naive(model, tokenizer, claims)
    model.set_adapter("auth")

    scorer = ClaimScorer(model, tokenizer, batch_size=5, adapters=["__base__", "auth", "cons"])
    mixed = scorer.score_adapters(claims)
    for adapter, reference in expected.items():
        np.testing.assert_allclose(mixed[adapter].log_p_supports, reference.log_p_supports,
                                   atol=1e-5, rtol=1e-6, err_msg=adapter)
        np.testing.assert_allclose(mixed[adapter].log_p_refutes, reference.log_p_refutes,
                                   atol=1e-5, rtol=1e-6, err_msg=adapter)
    # The adapters really differ from each other and from the base model.
    assert np.abs(expected["auth"].log_p_supports - expected["cons"].log_p_supports).max() > 1e-3
    assert np.abs(expected["auth"].log_p_supports - expected["__base__"].log_p_supports).max() > 1e-3
    with pytest.raises(ScoringError, match="score_adapters"):
        scorer.score(claims)
