"""Reading score tables: the scoring services are the one module that knows where a table's
file lies and what it must hold; the simulation's agents read through them."""
import hashlib

import pandas as pd
import pytest

from annotation.models import Dataset
from core.jobs import JobStatus
from modeling.models import Persona, ScoreTable
from modeling.score_services import (
    ScoreServiceError,
    score_file_read,
    score_file_sha256,
    succeeded_score_tables,
)

AGENT_COLUMNS = ("claim_id", "p_supports", "p_refutes")


def write(media_root, rows, name="t.parquet") -> str:
    path = media_root / "scores" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(path, index=False)
    return f"scores/{name}"


def test_a_checked_read_names_file_row_field_and_value(media_root):
    good = write(media_root, [{"claim_id": "a:original", "p_supports": 0.6, "p_refutes": 0.3}])
    assert list(score_file_read(good, required=AGENT_COLUMNS)["claim_id"]) == ["a:original"]
    with pytest.raises(ScoreServiceError, match=r"t\.parquet: missing column\(s\) framed_claim_id, base_id, framing"):
        score_file_read(good)
    bad = write(media_root, [{"claim_id": "a:x", "p_supports": 0.6, "p_refutes": 0.3},
                             {"claim_id": "b:x", "p_supports": 0.6, "p_refutes": -1.0}], "bad.parquet")
    with pytest.raises(ScoreServiceError, match=r"bad\.parquet: row 2 \(b:x\): field 'p_refutes': value -1\.0"):
        score_file_read(bad, required=AGENT_COLUMNS)
    twice = write(media_root, [{"claim_id": "a:x", "p_supports": 0.6, "p_refutes": 0.3}] * 2, "twice.parquet")
    with pytest.raises(ScoreServiceError, match="row 2: field 'claim_id': value 'a:x' appears twice"):
        score_file_read(twice, required=AGENT_COLUMNS)
    with pytest.raises(ScoreServiceError, match="cannot be read as Parquet"):
        score_file_read("scores/none.parquet", required=AGENT_COLUMNS)


def test_checksum_of_a_file_or_none(media_root):
    relative = write(media_root, [{"claim_id": "a:x", "p_supports": 0.5, "p_refutes": 0.5}])
    assert score_file_sha256(relative) == hashlib.sha256((media_root / relative).read_bytes()).hexdigest()
    assert score_file_sha256("scores/gone.parquet") is None


@pytest.mark.django_db
def test_only_succeeded_tables_of_the_splits_asked():
    dataset = Dataset.objects.create(name="d")
    persona = Persona.objects.create(name="p", is_base=True, status=JobStatus.SUCCEEDED)
    done = ScoreTable.objects.create(persona=persona, dataset=dataset, split="test",
                                     status=JobStatus.SUCCEEDED, path="scores/t.parquet")
    ScoreTable.objects.create(persona=persona, dataset=dataset, split="dev", status=JobStatus.FAILED)
    assert list(succeeded_score_tables(persona=persona, dataset=dataset)) == [done]
    assert list(succeeded_score_tables(persona=persona, dataset=dataset, splits=["dev"])) == []
