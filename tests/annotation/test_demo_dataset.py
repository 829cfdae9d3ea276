"""The shipped demo dataset keeps the rules of method.md section 1, and loads idempotently."""
from collections import Counter, defaultdict

import orjson
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from annotation.claims.demo import DEMO_DATASET, DEMO_FILE
from annotation.models import BaseClaim, FramedClaim

FRAMINGS = {"original", "authoritative", "consensus", "emotional", "prestige", "sensationalist"}


def demo_rows():
    return [orjson.loads(line) for line in DEMO_FILE.read_bytes().splitlines()]


def test_demo_has_balanced_base_claims_in_all_six_framings():
    rows = demo_rows()
    by_base = defaultdict(dict)
    for row in rows:
        base_id, framing = row["claim_id"].split(":")
        by_base[base_id][framing] = row
    assert len(by_base) >= 60
    assert all(set(framings) == FRAMINGS for framings in by_base.values())
    labels = Counter({row["true_label"] for row in f.values()}.pop() for f in by_base.values())
    assert labels["SUPPORTS"] == labels["REFUTES"]
    assert len({row["restated_claim"] for row in rows}) == len(rows)


def test_framings_are_not_one_fixed_template():
    openings = defaultdict(set)
    for row in demo_rows():
        if row["framing_type"] != "original":
            openings[row["framing_type"]].add(" ".join(row["restated_claim"].split()[:3]))
    assert all(len(starts) >= 20 for starts in openings.values()), {k: len(v) for k, v in openings.items()}


def test_restatements_keep_the_original_claim_recognisable():
    # A framing only nudges: most of the original's words must survive in every restatement.
    by_base = defaultdict(dict)
    for row in demo_rows():
        by_base[row["claim_id"].split(":")[0]][row["framing_type"]] = row["restated_claim"]
    for base_id, framings in by_base.items():
        original = {w.strip(".,!?;:'\"").lower() for w in framings["original"].split()}
        for framing, text in framings.items():
            words = {w.strip(".,!?;:'\"—").lower() for w in text.split()}
            assert len(original & words) / len(original) >= 0.6, (base_id, framing, text)


@pytest.mark.django_db
def test_load_demo_is_idempotent_and_creates_the_login_only_when_asked(capsys):
    call_command("load_demo")
    assert not get_user_model().objects.filter(username="demo").exists()
    call_command("load_demo", demo_user=True)
    assert BaseClaim.objects.filter(dataset__name=DEMO_DATASET).count() == len(demo_rows()) // 6
    assert FramedClaim.objects.filter(base_claim__dataset__name=DEMO_DATASET).count() == len(demo_rows())
    user = get_user_model().objects.get(username="demo")
    assert user.check_password("demo") and not user.is_staff and not user.is_superuser
    assert "already present" in capsys.readouterr().out


@pytest.mark.django_db
def test_the_demo_login_is_a_superuser_only_when_asked():
    call_command("load_demo", superuser=True)
    assert get_user_model().objects.get(username="demo").is_superuser
    # Asked again without --superuser (an older quick start's demo superuser): a researcher.
    call_command("load_demo", demo_user=True)
    user = get_user_model().objects.get(username="demo")
    assert not user.is_superuser and not user.is_staff
