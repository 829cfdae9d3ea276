"""The template framer: faithful restatements, varied templates, FrameRef files, and frame_claims."""
from collections import Counter, defaultdict

import orjson
import pytest
from django.core.management import CommandError, call_command

from annotation.claims.facts import FactBase, generate_base_claims
from annotation.claims.framer import (
    TEMPLATES,
    FramingError,
    InputClaim,
    assertion_core,
    contains_assertion,
    frame_claim,
    mid_sentence,
    write_framed_claims,
)
from annotation.models import BaseClaim, FramedClaim
from core.vocabulary import FRAMINGS


@pytest.fixture(scope="module")
def corpus():
    return generate_base_claims(FactBase.load(), seed=0)


def read_rows(root):
    return [(path.parent.name, orjson.loads(line)) for path in sorted(root.rglob("*.jsonl"))
            for line in path.read_bytes().splitlines()]


def test_at_least_six_distinct_templates_per_framing_each_with_one_slot():
    assert set(TEMPLATES) == set(FRAMINGS[1:])
    for framing, templates in TEMPLATES.items():
        assert len(templates) >= 6 and len(set(templates)) == len(templates), framing
        for template in templates:
            assert template.count("{C}") + template.count("{c}") == 1, template
            assert template.rstrip()[-1] in ".!", template


def test_every_framing_of_every_corpus_claim_keeps_the_assertion(corpus):
    used = defaultdict(Counter)
    for claim in corpus:
        restatements = frame_claim(claim.base_id, claim.text, seed=0)
        assert [r.framing for r in restatements] == list(FRAMINGS)
        assert restatements[0].text == claim.text
        core = assertion_core(claim.text)
        for r in restatements[1:]:
            assert core in r.text or mid_sentence(core) in r.text or \
                core[0].upper() + core[1:] in r.text, r
            assert r.text != claim.text
            assert ".." not in r.text and "!." not in r.text and ".!" not in r.text
            assert not r.text[0].islower() and r.text[-1] in ".!"
            used[r.framing][r.template] += 1
    # templates are varied: every template of every framing is used, none dominates
    for framing, counts in used.items():
        assert len(counts) == len(TEMPLATES[framing])
        assert max(counts.values()) < 2 * len(corpus) / len(TEMPLATES[framing])


@pytest.mark.parametrize("text, expected", [
    ("The capital of France is Paris.", "Experts confirm that the capital of France is Paris."),
    ("Paris is the capital of France.", "Experts confirm that Paris is the capital of France."),
    ("iPhones were first sold in 2007", "Experts confirm that iPhones were first sold in 2007."),
    ("The seat of government is Washington, D.C.",
     "Experts confirm that the seat of government is Washington, D.C."),
    ("There are eight planets in the Solar System!",
     "Experts confirm that there are eight planets in the Solar System."),
    ("Iron rusts in moist air.", "Experts confirm that Iron rusts in moist air."),
])
def test_capitalisation_and_final_punctuation_mid_sentence(text, expected, monkeypatch):
    monkeypatch.setitem(TEMPLATES, "authoritative", ("Experts confirm that {c}.",))
    (restated,) = frame_claim("x", text, framings=["authoritative"])[1:]
    assert restated.text == expected
    assert contains_assertion(restated.text, text)


@pytest.mark.parametrize("text, expected", [
    ("water boils at 100 degrees Celsius.", "BREAKING: Water boils at 100 degrees Celsius!"),
    ("iPhones were first sold in 2007.", "BREAKING: iPhones were first sold in 2007!"),
    ("The seat of government is Washington, D.C.", "BREAKING: The seat of government is Washington, D.C.!"),
])
def test_capitalisation_at_sentence_start(text, expected, monkeypatch):
    monkeypatch.setitem(TEMPLATES, "sensationalist", ("BREAKING: {C}!",))
    (restated,) = frame_claim("x", text, framings=["sensationalist"])[1:]
    assert restated.text == expected


def test_a_sentence_start_template_keeps_the_original_stop_inside_the_claim(monkeypatch):
    monkeypatch.setitem(TEMPLATES, "consensus", ("{C}, as most people would agree.",))
    (restated,) = frame_claim("x", "Paris is in France.", framings=["consensus"])[1:]
    assert restated.text == "Paris is in France, as most people would agree."


@pytest.mark.parametrize("text", ["", "   ", "Is Paris in France?", "..."])
def test_texts_that_cannot_be_framed(text):
    with pytest.raises(FramingError):
        frame_claim("x", text)


def test_template_choice_is_deterministic_per_seed_and_varies_with_it(corpus):
    first = [frame_claim(c.base_id, c.text, seed=5) for c in corpus[:300]]
    again = [frame_claim(c.base_id, c.text, seed=5) for c in corpus[:300]]
    other = [frame_claim(c.base_id, c.text, seed=6) for c in corpus[:300]]
    assert first == again
    changed = sum(a.template != b.template for x, y in zip(first, other) for a, b in zip(x, y))
    assert changed > 0.6 * 300 * 5


def test_written_records_are_frameref_records_and_import(tmp_path, corpus):
    claims = [InputClaim(c.base_id, c.text, c.true_label, c.split, c.topic, c.source)
              for c in corpus[:40] + corpus[-20:]]
    summary = write_framed_claims(claims, tmp_path / "out", seed=1, shard_size=100)
    rows = read_rows(tmp_path / "out")
    assert summary.rows == len(rows) == 60 * 6
    assert max(len(p.read_bytes().splitlines()) for p in (tmp_path / "out").rglob("*.jsonl")) == 100
    assert (tmp_path / "out" / "train" / "train-0000.jsonl").exists()
    by_id = {c.base_id: c for c in claims}
    for split, row in rows:
        base_id, framing = row["claim_id"].split(":")
        claim = by_id[base_id]
        assert split == claim.split and framing == row["framing_type"]
        assert row["true_label"] == claim.true_label and row["topic"] == claim.topic
        assert row["messages"] == [{"role": "user", "content": row["restated_claim"]},
                                   {"role": "assistant", "content": claim.true_label}]
        assert row["verification"] == ("not_applicable" if framing == "original" else "passed")
        if framing == "original":
            assert row["restated_claim"] == claim.text
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]
    with pytest.raises(FileExistsError):
        write_framed_claims(claims, tmp_path / "out")


@pytest.mark.django_db
def test_round_trip_through_import_claims(tmp_path, corpus):
    claims = [InputClaim(c.base_id, c.text, c.true_label, c.split, c.topic, c.source)
              for c in corpus[::50]]
    write_framed_claims(claims, tmp_path / "out", seed=0)
    call_command("import_claims", str(tmp_path / "out"), dataset="facts", no_progress=True)
    assert FramedClaim.objects.count() == len(claims) * 6
    for claim in claims:
        stored = BaseClaim.objects.get(external_id=claim.base_id)
        assert (stored.true_label, stored.split, stored.topic, stored.source) == \
            (claim.true_label, claim.split, claim.topic, claim.source)
        framed = {f.framing: f for f in stored.framed_claims.all()}
        assert set(framed) == set(FRAMINGS)
        assert framed["original"].text == claim.text
        assert framed["original"].verification == "not_applicable"
        assert framed["prestige"].verification == "passed"
        assert framed["prestige"].generator.startswith("framelab-template-framer/1 prestige#")


# ---------------------------------------------------------------------------------------
# frame_claims

CSV_CLAIMS = (
    "id,text,true_label,topic\n"
    "c1,The capital of France is Paris.,SUPPORTS,france\n"
    "c2,The capital of France is Lyon.,REFUTES,france\n"
    "c3,Iron has the atomic number 26.,SUPPORTS,iron\n"
    "c4,Iron has the atomic number 27.,REFUTES,iron\n"
)


@pytest.mark.django_db
def test_frame_claims_frames_a_csv_and_imports_it(tmp_path, capsys):
    source = tmp_path / "claims.csv"
    source.write_text(CSV_CLAIMS, encoding="utf-8")
    call_command("frame_claims", str(source), out=tmp_path / "out", seed=3,
                 import_as="mine", no_progress=True)
    assert "wrote 24 framed claims of 4 base claims" in capsys.readouterr().out
    rows = read_rows(tmp_path / "out")
    assert len(rows) == 24
    splits = defaultdict(set)
    for split, row in rows:
        splits[row["topic"]].add(split)
    assert all(len(s) == 1 for s in splits.values())  # a topic is never divided
    assert FramedClaim.objects.filter(base_claim__dataset__name="mine").count() == 24


def test_frame_claims_reads_jsonl_with_splits_and_a_subset_of_framings(tmp_path):
    source = tmp_path / "claims.jsonl"
    source.write_bytes(b"\n".join(orjson.dumps(r) for r in [
        {"id": "a", "text": "The Moon orbits the Earth.", "true_label": "SUPPORTS", "split": "test"},
        {"id": "b", "text": "The Sun orbits the Earth.", "true_label": "REFUTES", "split": "dev"},
    ]))
    call_command("frame_claims", str(source), out=tmp_path / "out",
                 framings=["authoritative", "consensus"], no_progress=True)
    rows = read_rows(tmp_path / "out")
    assert Counter(row["framing_type"] for _, row in rows) == {
        "original": 2, "authoritative": 2, "consensus": 2}
    assert {split for split, row in rows if row["claim_id"].startswith("a:")} == {"test"}


@pytest.mark.parametrize("content, message", [
    ("id,text\nc1,Paris is in France.\n", "claims.csv:1: field 'true_label': the header has no such column"),
    ("id,text,true_label\nc1,Paris is in France.,TRUE\n",
     "claims.csv:2: field 'true_label': value 'TRUE': unknown label; accepted: SUPPORTS or REFUTES"),
    ("id,text,true_label\nc1,Paris is in France.,SUPPORTS\nc1,Lyon is in France.,SUPPORTS\n",
     "claims.csv:3: field 'id': value 'c1': duplicate id (first on line 2)"),
    ("id,text,true_label\nc:1,Paris is in France.,SUPPORTS\n", "claims.csv:2: field 'id': value 'c:1'"),
    ("id,text,true_label\nc1,Is Paris in France?,SUPPORTS\n",
     "claims.csv:2: field 'text': value 'Is Paris in France?': a question is not a claim"),
    ("id,text,true_label\nc1,,SUPPORTS\n", "claims.csv:2: field 'text': the field is missing or empty"),
    ("id,text,true_label,split\nc1,Paris is in France.,SUPPORTS,validation\n",
     "claims.csv:2: field 'split': value 'validation': unknown split"),
    ("id,text,true_label\nc1,Paris is in France.,SUPPORTS,extra\n",
     "claims.csv:2: more values than header columns"),
])
def test_frame_claims_names_file_line_field_and_value(tmp_path, monkeypatch, content, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "claims.csv").write_text(content, encoding="utf-8")
    with pytest.raises(CommandError) as error:
        call_command("frame_claims", "claims.csv", out=tmp_path / "out", no_progress=True)
    assert message in str(error.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("raw, message", [
    (b'{"id": "a", "text": "Paris is in France.", "true_label": "SUPPORTS"}\n{"id": "b", ',
     "claims.jsonl:2: invalid JSON"),
    (b'["a", "Paris is in France.", "SUPPORTS"]\n', "claims.jsonl:1: value"),
    (b'{"id": "a", "text": 42, "true_label": "SUPPORTS"}\n',
     "claims.jsonl:1: field 'text': value 42: expected a string, found int"),
])
def test_frame_claims_jsonl_errors(tmp_path, monkeypatch, raw, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "claims.jsonl").write_bytes(raw)
    with pytest.raises(CommandError) as error:
        call_command("frame_claims", "claims.jsonl", out=tmp_path / "out", no_progress=True)
    assert message in str(error.value)


def test_frame_claims_refuses_undecodable_bytes_and_unknown_files(tmp_path):
    (tmp_path / "claims.csv").write_bytes(b"id,text,true_label\nc1,Caf\xe9 is open.,SUPPORTS\n")
    with pytest.raises(CommandError, match="UTF-8"):
        call_command("frame_claims", str(tmp_path / "claims.csv"), out=tmp_path / "o", no_progress=True)
    (tmp_path / "claims.txt").write_text("x")
    with pytest.raises(CommandError, match="unknown file type"):
        call_command("frame_claims", str(tmp_path / "claims.txt"), out=tmp_path / "o", no_progress=True)


def test_frame_claims_refuses_an_out_folder_that_holds_claims(tmp_path):
    (tmp_path / "claims.csv").write_text(CSV_CLAIMS, encoding="utf-8")
    call_command("frame_claims", str(tmp_path / "claims.csv"), out=tmp_path / "out", no_progress=True)
    before = sorted(p.read_bytes() for p in (tmp_path / "out").rglob("*.jsonl"))
    with pytest.raises(CommandError, match="already holds"):
        call_command("frame_claims", str(tmp_path / "claims.csv"), out=tmp_path / "out",
                     seed=9, no_progress=True)
    assert sorted(p.read_bytes() for p in (tmp_path / "out").rglob("*.jsonl")) == before


# ---------------------------------------------------------------------------------------
# The LLM framer, on a tiny random model (its texts are noise; the procedure is what counts)


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tests.modeling.conftest import save_tiny_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    folder = save_tiny_model(tmp_path_factory.mktemp("tiny-framer"))
    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    yield folder, model, tokenizer
    torch.set_num_threads(threads)


@pytest.mark.parametrize("original, restated, problem", [
    ("The capital of France is Paris.", "Experts say the capital of France is Paris.", ""),
    ("Iron has the atomic number 26.", "Experts say iron has the atomic number 27.", "numbers differ"),
    ("Iron has the atomic number 26.", "Experts say iron has atomic number 26 of 118.", "numbers differ"),
    ("The capital of France is Paris.", "Experts say the capital is Paris.", "names missing: france"),
    ("The capital of France is Paris.", "The capital of France is Paris.", "not restated"),
    ("The capital of France is Paris.", "  ", "empty"),
    ("The capital of France is Paris.", "Experts say the capital of France is Paris and", "incomplete"),
    ("The capital of France is Paris.", 'The claim is "The capital of France is Paris."', "talks about"),
    ("The capital of France is Paris.", "Experts say the capital of France is Paris" + ", yes" * 60 + ".",
     "too long"),
])
def test_lexical_check(original, restated, problem):
    from annotation.claims.llm_framer import lexical_check

    found = lexical_check(original, restated)
    assert found.startswith(problem) if problem else found == ""


def test_verifier_probabilities_equal_a_naive_one_pair_computation(tiny_llm):
    import torch

    from annotation.claims.llm_framer import (
        pass_probabilities,
        verdict_token_ids,
        verify_prompt,
    )

    _, model, tokenizer = tiny_llm
    pairs = [("Water is wet.", "Most people agree that water is wet."),
             ("The capital of France is Paris.", "BREAKING: The capital of France is Paris, the experts say!"),
             ("Ice is cold.", "Ice is cold, and that moves me.")]
    batched = pass_probabilities(model, tokenizer, pairs, batch_size=3)
    pass_id, fail_id = verdict_token_ids(tokenizer)
    for (original, restated), p in zip(pairs, batched):
        ids = tokenizer(verify_prompt(tokenizer, original, restated), return_tensors="pt",
                        add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, -1]
        naive = torch.softmax(torch.stack([logits[pass_id], logits[fail_id]]), 0)[0].item()
        assert p == pytest.approx(naive, abs=1e-5)


def test_llm_frame_keeps_only_what_passes_both_checks(tiny_llm):
    from annotation.claims.llm_framer import lexical_check, llm_frame

    _, model, tokenizer = tiny_llm
    claims = [("w", "water is wet."), ("p", "The capital of France is Paris."),
              ("i", "Iron has the atomic number 26.")]
    framings = ["authoritative", "sensationalist"]
    results = llm_frame(claims, framings, model=model, tokenizer=tokenizer, max_new_tokens=12)
    again = llm_frame(claims, framings, model=model, tokenizer=tokenizer, max_new_tokens=12)
    assert [(r.text, r.verdict) for r in results] == [(r.text, r.verdict) for r in again]
    assert {(r.base_id, r.framing) for r in results} == {(b, f) for b, _ in claims for f in framings}
    originals = dict(claims)
    for r in results:
        lexical = lexical_check(originals[r.base_id], r.text)
        if r.verdict == "PASS":
            assert not lexical and r.pass_probability > 0.5 and r.reason == ""
        else:
            assert r.reason == lexical if lexical else r.pass_probability <= 0.5


@pytest.mark.parametrize("on_fail", ["drop", "template"])
def test_frame_claims_with_the_llm_framer(tmp_path, tiny_llm, on_fail):
    folder, _, _ = tiny_llm
    (tmp_path / "claims.csv").write_text(CSV_CLAIMS, encoding="utf-8")
    call_command("frame_claims", str(tmp_path / "claims.csv"), out=tmp_path / "out",
                 framer="llm", model=str(folder), on_fail=on_fail, max_new_tokens=8,
                 framings=["authoritative", "consensus"], no_progress=True)
    rows = [row for _, row in read_rows(tmp_path / "out")]
    report = (tmp_path / "out" / "verification-report.tsv").read_text().splitlines()
    assert len(report) == 1 + 4 * 2
    passed = sum(line.split("\t")[2] == "PASS" for line in report[1:])
    llm_rows = [r for r in rows if r["generator"].startswith("llm:")]
    assert len(llm_rows) == passed
    assert all(r["verification"] == "passed" for r in llm_rows)
    assert Counter(r["framing_type"] for r in rows)["original"] == 4
    expected = 4 + (passed if on_fail == "drop" else 8)
    assert len(rows) == expected


def test_same_claims_and_seed_give_byte_identical_files(tmp_path, corpus):
    claims = [InputClaim(c.base_id, c.text, c.true_label, c.split, c.topic, c.source)
              for c in corpus[::20]]
    for name, seed in (("a", 4), ("b", 4), ("c", 5)):
        write_framed_claims(claims, tmp_path / name, seed=seed)
    read = lambda name: [p.read_bytes() for p in sorted((tmp_path / name).rglob("*.jsonl"))]
    assert read("a") == read("b")
    assert read("a") != read("c")
