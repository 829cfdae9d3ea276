"""Pool embeddings: the packaged MiniLM, normalised float32, cached with a sidecar that
detects a stale cache, and the pool order they are aligned with."""
import json

import numpy as np
import pytest

from annotation.models import BaseClaim, Dataset, FramedClaim
from simulation.embeddings import (
    EmbeddingModelError,
    cache_paths,
    embedding_model_path,
    packaged_model_path,
    pool_embeddings,
)
from simulation.selectors import pool_claims

TEXTS = {
    "a:original": "The Eiffel Tower is in Paris.",
    "a:authoritative": "Historians confirm that the Eiffel Tower stands in Paris.",
    "b:original": "Octopuses have three hearts.",
    "b:emotional": "It is astonishing, but octopuses really have three hearts!",
}


def embed(ids, texts, **kwargs):
    return pool_embeddings(dataset_id=1, dataset_name="d", split="test", claim_ids=list(ids),
                           texts=list(texts), **kwargs)


def test_packaged_minilm_gives_normalised_float32_rows(media_root):
    result = embed(TEXTS, TEXTS.values())
    vectors = result.vectors
    assert vectors.dtype == np.float32 and vectors.shape == (4, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similarity = vectors @ vectors.T
    # Two framings of one claim are closer to each other than to another claim.
    assert similarity[0, 1] > similarity[0, 2] and similarity[2, 3] > similarity[1, 3]
    assert result.model.startswith("all-MiniLM-L6-v2") and not result.from_cache
    assert result.path.parent == media_root / "embeddings"


def test_cache_is_reused_and_a_stale_cache_is_recomputed(media_root):
    first = embed(TEXTS, TEXTS.values())
    npy, sidecar = cache_paths(dataset_id=1, split="test", model_path=packaged_model_path().resolve())
    meta = json.loads(sidecar.read_text())
    assert meta["claim_ids"] == list(TEXTS) and meta["dim"] == 384 and meta["rows"] == 4

    again = embed(TEXTS, TEXTS.values())
    assert again.from_cache
    np.testing.assert_array_equal(again.vectors, first.vectors)

    edited = dict(TEXTS, **{"b:original": "Octopuses have two hearts."})
    changed = embed(edited, edited.values())
    assert not changed.from_cache
    np.testing.assert_array_equal(changed.vectors[:2], first.vectors[:2])
    assert not np.allclose(changed.vectors[2], first.vectors[2])
    assert json.loads(sidecar.read_text())["texts_sha256"] != meta["texts_sha256"]

    fewer = embed(list(TEXTS)[:3], list(TEXTS.values())[:3])
    assert not fewer.from_cache and fewer.vectors.shape == (3, 384)

    npy.write_bytes(b"not a numpy file")  # a damaged cache is recomputed, not trusted
    assert not embed(list(TEXTS)[:3], list(TEXTS.values())[:3]).from_cache


def test_a_missing_model_folder_is_named(tmp_path, settings):
    with pytest.raises(EmbeddingModelError, match=r"'/nowhere/model': not a local sentence-transformers folder"):
        embedding_model_path("/nowhere/model")
    settings.EMBEDDING_MODEL = str(tmp_path)
    with pytest.raises(EmbeddingModelError, match=str(tmp_path)):
        embedding_model_path()


@pytest.mark.django_db
def test_pool_claims_filter_by_split_in_a_fixed_order():
    dataset = Dataset.objects.create(name="pool")
    for i, (split, label) in enumerate([("test", "SUPPORTS"), ("dev", "REFUTES"), ("test", "REFUTES")]):
        base = BaseClaim.objects.create(dataset=dataset, external_id=f"c{i}", true_label=label, split=split)
        for framing in ("original", "consensus"):
            FramedClaim.objects.create(base_claim=base, framing=framing, text=f"claim {i} {framing}")
    pool = pool_claims(dataset=dataset, split="test")
    assert list(pool["claim_id"]) == ["c0:original", "c0:consensus", "c2:original", "c2:consensus"]
    assert list(pool["true_label"]) == ["SUPPORTS", "SUPPORTS", "REFUTES", "REFUTES"]
    assert list(pool.columns) == ["claim_id", "framed_claim_id", "base_id", "framing", "true_label", "text"]
    assert len(pool_claims(dataset=dataset, split="all")) == 6
