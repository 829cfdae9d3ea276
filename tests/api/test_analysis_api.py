"""The analysis endpoint: the analysis module's numbers on real judgments, and its errors."""
import pytest

from annotation.analysis.options import AnalysisOptions
from annotation.analysis.study import study_analysis

from .conftest import take_part

pytestmark = pytest.mark.django_db


def test_the_analysis_of_a_study(api, study):
    from annotation.studies.assignment import participant_mark

    take_part(study, "P1", accept=lambda item: True)
    take_part(study, "P2", accept=lambda item: bool(item.attention_check_id))
    participant_mark(participant=take_part(study, "P3"), status="returned")
    response = api.get(f"/api/studies/{study.pk}/analysis/",
                       {"bootstrap": "50", "mixed_model": "false", "seed": "3"})
    assert response.status_code == 200, response.content
    result = response.json()
    expected = study_analysis(study=study, options=AnalysisOptions(
        bootstrap_resamples=50, mixed_model=False, seed=3)).to_dict()
    assert result == expected
    assert result["options"]["bootstrap_resamples"] == 50
    overall = next(row for row in result["framings"] if row["framing"] == "all")
    assert overall["n"] == 12  # P3 returned: excluded by default
    status_rule = next(rule for rule in result["exclusions"] if rule["rule"] == "status")
    assert (status_rule["participants_removed"], status_rule["judgments_removed"]) == (1, 6)
    by_framing = {row["framing"]: row for row in result["framings"]}
    # P1 accepts everything, P2 nothing: every framing's acceptance rate is one half.
    assert all(row["acceptance_rate"]["estimate"] == 0.5 for row in by_framing.values() if row["n"])
    # Switching the exclusions off brings P3's answers back.
    everyone = api.get(f"/api/studies/{study.pk}/analysis/",
                       {"bootstrap": "0", "mixed_model": "0", "exclusions": "none"}).json()
    assert next(row for row in everyone["framings"] if row["framing"] == "all")["n"] == 18


def test_a_bad_parameter_is_a_400_naming_it(api, other_api, study):
    response = api.get(f"/api/studies/{study.pk}/analysis/", {"confidence_level": "2"})
    assert response.status_code == 400
    assert "confidence_level" in response.json()["detail"] and "2" in response.json()["detail"]
    unknown = api.get(f"/api/studies/{study.pk}/analysis/", {"exclusions": "sleepy"})
    assert unknown.status_code == 400 and "sleepy" in unknown.json()["detail"]
    assert other_api.get(f"/api/studies/{study.pk}/analysis/").status_code == 404


def test_the_analysis_gives_two_way_intervals_and_the_primary_test_by_default(api, study):
    take_part(study, "P1", accept=lambda item: True)
    take_part(study, "P2", accept=lambda item: bool(item.attention_check_id))
    default = api.get(f"/api/studies/{study.pk}/analysis/", {"mixed_model": "0"}).json()
    assert default["options"]["interval"] == "two-way" and default["options"]["permutations"] == 2000
    assert default["framing_tests"]["method"] == "permutation of framing labels within base claims"
    assert default == study_analysis(study=study, options=AnalysisOptions(mixed_model=False)).to_dict()
    bootstrap = api.get(f"/api/studies/{study.pk}/analysis/",
                        {"mixed_model": "0", "interval": "participant-bootstrap", "bootstrap": "50"}).json()
    assert bootstrap == study_analysis(study=study, options=AnalysisOptions(
        mixed_model=False, interval="participant-bootstrap", bootstrap_resamples=50)).to_dict()
    bad = api.get(f"/api/studies/{study.pk}/analysis/", {"interval": "sideways"})
    assert bad.status_code == 400 and "interval" in bad.json()["detail"] and "sideways" in bad.json()["detail"]


def test_the_mixed_model_is_fitted_in_the_background_on_request(
        api, other_api, study, monkeypatch, django_capture_on_commit_callbacks):
    from annotation.analysis import mixed_model
    from annotation.models import ModelFit

    for name, value in (("CHAINS", 2), ("WARMUP", 150), ("DRAWS", 200)):  # a short NUTS run
        monkeypatch.setattr(mixed_model, name, value)
    take_part(study, "P1", accept=lambda item: True)
    take_part(study, "P2", accept=lambda item: bool(item.attention_check_id))
    take_part(study, "P3", accept=lambda item: item.pk % 2 == 0)
    take_part(study, "P4", accept=lambda item: item.pk % 3 != 0)
    url = f"/api/studies/{study.pk}/analysis/model/"

    # The analysis never fits the model in the request: it says how to ask for it.
    analysis = api.get(f"/api/studies/{study.pk}/analysis/", {"permutations": "0"}).json()
    assert analysis["mixed_model"]["fitted"] is False
    assert analysis["mixed_model"]["reason"].startswith("not fitted yet") and analysis["mixed_model"]["job"] is None
    before = api.get(url).json()
    assert before["job"] is None and before["mixed_model"]["reason"] == analysis["mixed_model"]["reason"]

    with django_capture_on_commit_callbacks(execute=True):  # the worker's task (eager here)
        started = api.post(url + "?seed=4&exclusions=none")
    assert started.status_code == 202, started.content
    assert started.json()["job"]["status"] == "queued" and started.json()["job"]["url"].endswith(url)
    done = api.get(url, {"seed": "4", "exclusions": "none"}).json()
    assert done["job"]["status"] == "succeeded" and done["job"]["progress"] == 1.0
    model = done["mixed_model"]
    assert model["fitted"], model["reason"]
    assert model["n"] == 24 and model["diagnostics"]["chains"] == 2
    assert {term["kind"] for term in model["fixed_effects"]} == {"intercept", "framing", "truth", "interaction"}
    # the analysis shows the stored fit for the same options, not for others
    assert api.get(f"/api/studies/{study.pk}/analysis/", {"seed": "4", "exclusions": "none", "permutations": "0"}).json()[
        "mixed_model"]["fixed_effects"] == model["fixed_effects"]
    assert api.get(url).json()["job"] is None
    # asking again gives the fit there is (200), not a second one
    again = api.post(url + "?seed=4&exclusions=none")
    assert again.status_code == 200 and again.json()["job"]["id"] == done["job"]["id"]
    assert ModelFit.objects.count() == 1
    # errors: a bad option names it; another researcher's study does not exist
    bad = api.post(url + "?confidence_level=2")
    assert bad.status_code == 400 and "confidence_level" in bad.json()["detail"]
    assert other_api.get(url).status_code == 404 and other_api.post(url).status_code == 404
