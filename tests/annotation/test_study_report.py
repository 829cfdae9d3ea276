"""A study's analysis from the database: the command, the report page, its downloads and who may see them."""
import io
import json
import secrets
import uuid
import xml.etree.ElementTree as ElementTree
from datetime import timedelta

import pandas as pd
import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from annotation.analysis.options import AnalysisOptions
from annotation.analysis.study import cached_study_analysis, study_analysis
from annotation.models import BatchItem, Dataset, Judgment, Participant
from annotation.studies.services import study_create

pytestmark = pytest.mark.django_db

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FAST = "bootstrap=200&mixed_model=0"


@pytest.fixture(autouse=True)
def _fresh_cache():
    # Rolled-back tests reuse ids, so a cached analysis could outlive its study.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def researcher(client):
    user = get_user_model().objects.create_user("ada", password="pw-for-tests")
    client.force_login(user)
    return user


def make_study(owner, name="framing pilot"):
    call_command("load_demo", no_user=True)
    return study_create(dataset=Dataset.objects.get(name="FrameLab demo"), name=name, owner=owner,
                        base_claims=8, batch_size=6, raters_per_batch=2, seed=7,
                        attention_checks=[("Water is dry at room temperature.", False, 3)])


def answer_batch(participant, *, status="completed", milliseconds=6000, fail_check=False):
    """Answers every item of the participant's batch: authoritative false claims are always
    accepted, other claims are judged correctly; the attention check is passed unless told."""
    start = timezone.now() - timedelta(hours=1)
    judgments = []
    items = BatchItem.objects.filter(batch=participant.batch).select_related(
        "framed_claim__base_claim", "attention_check")
    for item in items:
        if item.attention_check_id:
            accept = item.attention_check.expected_accept != fail_check
            passed = accept == item.attention_check.expected_accept
        else:
            claim = item.framed_claim
            accept = claim.base_claim.true_label == "SUPPORTS" or claim.framing == "authoritative"
            passed = None
        shown = start + timedelta(seconds=10 * item.position)
        judgments.append(Judgment(
            participant=participant, item=item, accept=accept, confidence=1 + item.position % 5,
            familiarity=1 + (item.position * 2) % 5, position=item.position, shown_at=shown,
            answered_at=shown + timedelta(milliseconds=milliseconds), response_time_ms=milliseconds,
            attention_passed=passed, submission_key=uuid.uuid4()))
    Judgment.objects.bulk_create(judgments)
    if fail_check:
        participant.attention_failures = 1
    participant.status = status
    participant.save()
    return len([j for j in judgments if j.attention_passed is None])


@pytest.fixture
def study(researcher):
    study = make_study(researcher)
    claim_judgments = {}
    for batch in study.batches.order_by("index"):
        for rater in range(2):
            pid = f"P{batch.index}-{rater}"
            participant = Participant.objects.create(study=study, external_id=pid,
                                                     token=secrets.token_urlsafe(24), batch=batch)
            special = {"P0-0": {"status": "returned"}, "P1-0": {"fail_check": True},
                       "P2-0": {"milliseconds": 700}}.get(pid, {})
            claim_judgments[pid] = answer_batch(participant, **special)
    study.claim_judgments = claim_judgments
    return study


def test_study_analysis_applies_the_exclusions_to_the_stored_judgments(study):
    result = study_analysis(study=study, options=AnalysisOptions(bootstrap_resamples=100, mixed_model=False))
    flow = {row["rule"]: row for row in result.exclusions}
    assert (flow["status"]["participants_removed"], flow["status"]["judgments_removed"]) == (1, 6)
    assert (flow["attention"]["participants_removed"], flow["attention"]["judgments_removed"]) == (1, 6)
    assert (flow["fast"]["participants_removed"], flow["fast"]["judgments_removed"]) == (1, 6)
    assert result.counts["judgments"] == sum(study.claim_judgments.values()) == 96
    assert result.counts["judgments_analysed"] == 96 - 18
    assert result.counts["attention_check_rows"] == 16
    # by construction every authoritative false claim is accepted, every other answer right
    assert result.summary("authoritative")["false_acceptance_rate"]["estimate"] == 1.0
    assert result.summary("original")["false_acceptance_rate"]["estimate"] == 0.0
    assert result.summary("all")["false_rejection_rate"]["estimate"] == 0.0
    everyone = study_analysis(study=study, options=AnalysisOptions(exclusions=(), bootstrap_resamples=0,
                                                                   mixed_model=False))
    assert everyone.counts["judgments_analysed"] == 96


def test_active_participants_are_noted(study):
    Participant.objects.filter(external_id="P3-1").update(status=Participant.Status.ACTIVE)
    result = study_analysis(study=study, options=AnalysisOptions(bootstrap_resamples=0, mixed_model=False))
    assert any("still active" in note for note in result.notes)


def test_the_cached_analysis_is_computed_once_and_sees_new_answers(study, monkeypatch):
    import annotation.analysis.study as module

    calls = []
    monkeypatch.setattr(module, "study_analysis",
                        lambda **kwargs: calls.append(kwargs) or study_analysis(**kwargs))
    options = AnalysisOptions(bootstrap_resamples=0, mixed_model=False)
    before = cached_study_analysis(study=study, options=options)
    again = cached_study_analysis(study=study, options=options)
    assert len(calls) == 1 and again.to_dict() == before.to_dict()
    cached_study_analysis(study=study, options=AnalysisOptions(bootstrap_resamples=10, mixed_model=False))
    assert len(calls) == 2
    Participant.objects.filter(study=study, external_id="P0-0").update(status="completed")
    after = cached_study_analysis(study=study, options=options)
    assert len(calls) == 3
    assert after.counts["judgments_analysed"] == before.counts["judgments_analysed"] + 6


def test_command_prints_json_by_name_and_by_id(study):
    out = io.StringIO()
    call_command("analyze_study", study.name, "--format", "json", "--bootstrap", "100",
                 "--no-mixed-model", stdout=out)
    data = json.loads(out.getvalue())
    assert data["study"] == {"id": study.pk, "name": study.name}
    assert data["counts"]["judgments_analysed"] == 78
    assert [row["rule"] for row in data["exclusions"]] == ["persona", "status", "attention", "fast",
                                                        "design-violations"]
    authoritative = next(row for row in data["framings"] if row["framing"] == "authoritative")
    assert authoritative["false_acceptance_rate"]["estimate"] == 1.0
    assert data["mixed_model"]["reason"] == "switched off"
    assert data["options"]["bootstrap_resamples"] == 100

    by_id = io.StringIO()
    call_command("analyze_study", str(study.pk), "--format", "json", "--no-exclusions", "--bootstrap", "0",
                 "--no-mixed-model", stdout=by_id)
    assert json.loads(by_id.getvalue())["counts"]["judgments_analysed"] == 96


def test_command_text_report_and_files(study, tmp_path):
    out = io.StringIO()
    call_command("analyze_study", study.name, "--exclusions", "status", "--familiarity", "5",
                 "--bootstrap", "50", "--no-mixed-model", "--out-dir", str(tmp_path), stdout=out,
                 stderr=io.StringIO())
    text = out.getvalue()
    assert text.startswith(f"Study: {study.name} (id {study.pk})")
    assert "False acceptance at familiarity 5" in text and "Krippendorff" in text
    assert (tmp_path / "false_acceptance.png").read_bytes().startswith(PNG_MAGIC)
    assert ElementTree.parse(tmp_path / "confidence.svg").getroot().tag.endswith("svg")
    summary = pd.read_csv(tmp_path / "framing_summary.csv")
    assert "false_acceptance_rate_ci_low" in summary.columns
    assert json.loads((tmp_path / "analysis.json").read_text())["counts"]["judgments_analysed"] == 90


def test_command_errors_name_the_option_and_the_study(study):
    with pytest.raises(CommandError, match="option --bootstrap: value 'lots'"):
        call_command("analyze_study", study.name, "--bootstrap", "lots")
    with pytest.raises(CommandError, match="option --familiarity: value '9'"):
        call_command("analyze_study", study.name, "--familiarity", "9")
    with pytest.raises(CommandError, match="no study with the id or name 'nope'"):
        call_command("analyze_study", "nope")
    with pytest.raises(CommandError, match="a study .* or --table"):
        call_command("analyze_study")


def test_command_analyses_a_frameref_tidy_table_file(tmp_path, db, short_sampler):
    rows = []
    for participant in range(6):
        for base in range(4):
            framing = ("original", "authoritative")[(participant + base) % 2]
            truth = "SUPPORTS" if base % 2 else "REFUTES"
            accept = truth == "SUPPORTS" or framing == "authoritative"
            rows.append({"DataPoint_ID": base, "Task_Group_ID": 1, "text": "t", "Annotator_ID": f"A{participant}",
                         "full_claim_id": f"fever-{base}:{framing}", "framing_type": framing, "true_label": truth,
                         "accurate_response": "SUPPORTS" if accept else "REFUTES",
                         "confidence_response": 3, "familiarity_response": 4})
    path = tmp_path / "frameref_tidy.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    out = io.StringIO()
    call_command("analyze_study", "--table", str(path), "--format", "json", "--bootstrap", "0", stdout=out)
    data = json.loads(out.getvalue())
    assert data["table"] == str(path) and data["counts"]["judgments_analysed"] == 24
    far = {row["framing"]: row["false_acceptance_rate"]["estimate"] for row in data["framings"]}
    assert far == {"original": 0.0, "authoritative": 1.0, "all": 0.5}
    # The defaults apply to a table file too: two-way intervals and the primary test.
    assert data["options"]["interval"] == "two-way"
    assert [row["framing"] for row in data["framing_tests"]["rows"]] == ["authoritative"]
    assert data["framing_tests"]["rows"][0]["difference"] == 1.0
    bad = tmp_path / "bad.csv"
    pd.DataFrame(rows).assign(accurate_response="MAYBE").to_csv(bad, index=False)
    with pytest.raises(CommandError, match=r"bad.csv: row 1: column 'accurate_response': value 'MAYBE'"):
        call_command("analyze_study", "--table", str(bad))


def report_url(study, query=""):
    return reverse("annotation:study-report", args=[study.pk]) + (f"?{query}" if query else "")


@pytest.fixture
def short_sampler(monkeypatch):
    """The report's model with a short NUTS run (2 chains x 200 draws): the same code, faster."""
    from annotation.analysis import mixed_model

    monkeypatch.setattr(mixed_model, "CHAINS", 2)
    monkeypatch.setattr(mixed_model, "WARMUP", 150)
    monkeypatch.setattr(mixed_model, "DRAWS", 200)


def test_report_page_shows_the_tables_and_fits_the_model_in_the_background(
        client, study, short_sampler, django_capture_on_commit_callbacks):
    from annotation.models import ModelFit

    page = client.get(report_url(study, "bootstrap=200"))
    assert page.status_code == 200
    html = page.content.decode()
    for text in ("Analysis of framing pilot", "78 of 96 judgments analysed", "Per framing",
                 "False acceptance P(Yes | false)", "Pearson chi-square", "Krippendorff", "Mixed-effects",
                 "Exclusions", "returned the study", "Difference from the original framing"):
        assert text in html, text
    # The page never fits the model itself: it offers to, and nothing runs until asked.
    model = page.context["result"].mixed_model
    assert not model["fitted"] and model["reason"].startswith("not fitted yet") and model["job"] is None
    assert "Fit the mixed model" in html and not ModelFit.objects.exists()
    assert html.count("<img ") == 3
    # without JavaScript everything is a link or a plain form
    assert "<script" not in html

    fit_url = reverse("annotation:study-report-model-fit", args=[study.pk]) + "?bootstrap=200"
    assert client.get(fit_url).status_code == 405
    with django_capture_on_commit_callbacks(execute=True):  # the worker's task (eager here)
        response = client.post(fit_url)
    assert response.status_code == 302 and response["Location"].endswith("#model")
    fit = ModelFit.objects.get()
    assert fit.status == "succeeded" and fit.progress == 1.0 and fit.attempts == 1
    assert set(fit.options) == {"exclusions", "min_median_response_ms", "confidence_level", "seed"}
    assert AnalysisOptions.from_params(fit.options) == AnalysisOptions()

    page = client.get(response["Location"])
    html = page.content.decode()
    model = page.context["result"].mixed_model
    assert model["fitted"], model["reason"]
    assert model["n"] == 78 and model["job"]["status"] == "succeeded"
    for text in ("framing[authoritative]", "framing[authoritative]:true claim", "R-hat", "ESS",
                 "Implied acceptance per framing", "Sampling "):
        assert text in html, text
    assert "Fit the mixed model" not in html
    # The interval method and the permutations do not change the model: the fit is kept.
    other = client.get(report_url(study, "bootstrap=200&interval=participant-bootstrap&permutations=50"))
    assert other.context["result"].mixed_model["fitted"]
    # Other exclusions are another model, not fitted yet; asking twice makes one fit.
    fewer = client.get(report_url(study, "exclusions=status"))
    assert fewer.context["result"].mixed_model["reason"].startswith("not fitted yet")
    # The downloads carry the stored fit.
    csv = client.get(reverse("annotation:study-report-table", args=[study.pk, "mixed_model_rates"]))
    assert csv.status_code == 200 and b"false_acceptance_minus_original" in csv.content
    data = json.loads(client.get(reverse("annotation:study-report-data", args=[study.pk, "json"])).content)
    assert data["mixed_model"]["fitted"] and data["mixed_model"]["diagnostics"]["chains"] == 2


def test_a_running_fit_shows_its_progress_and_the_page_follows_it(client, study):
    from annotation.analysis.model_fits import model_fit_start
    from annotation.models import ModelFit

    fit, created = model_fit_start(study=study, options=AnalysisOptions())  # queued: no worker here
    assert created and model_fit_start(study=study, options=AnalysisOptions())[0] == fit
    ModelFit.objects.filter(pk=fit.pk).update(status="running", progress=0.5,
                                              stage="drawing 1500 draws per chain from the posterior")
    page = client.get(report_url(study))
    html = page.content.decode()
    # No timed refresh (it would interrupt a screen reader): a script polls the fit's status
    # in the API and reloads once it is done; without it, a link checks again.
    assert "http-equiv" not in html and "job-progress.js" in html
    status_url = reverse("api:study-analysis-model", args=[study.pk])
    assert f'data-progress-url="{status_url}?' in html and ">Check again</a>" in html
    assert "being fitted in the background: <span data-stage>drawing 1500 draws per chain" in html
    assert '<progress max="1" value="0.5" aria-label="Fitting the mixed model">' in html
    assert "Fit the mixed model" not in html
    # a failed fit says why and offers to fit again
    ModelFit.objects.filter(pk=fit.pk).update(status="failed", error="MemoryError: out of memory")
    html = client.get(report_url(study)).content.decode()
    assert "the last fit failed: MemoryError: out of memory; start it again" in html
    assert "Fit the mixed model" in html and "job-progress.js" not in html
    again, created = model_fit_start(study=study, options=AnalysisOptions())
    assert created and again.pk != fit.pk
    # new answers make the stored fit stale: the page asks for a new one
    ModelFit.objects.filter(pk=again.pk).update(status="succeeded", result={"fitted": True})
    Participant.objects.filter(study=study).update(status_changed_at=timezone.now())
    assert client.get(report_url(study)).context["result"].mixed_model["reason"].startswith("not fitted yet")


def test_report_exclusions_toggle_through_the_form(client, study):
    page = client.get(report_url(study, f"exclusions=&exclusions=status&{FAST}"))
    assert page.status_code == 200
    assert page.context["result"].counts["judgments_analysed"] == 90
    html = page.content.decode()
    assert 'value="status" checked' in html and 'value="fast">' in html
    none = client.get(report_url(study, f"exclusions=&{FAST}"))
    assert none.context["result"].counts["judgments_analysed"] == 96
    # the whole form as a browser submits it: hidden empties, ticked boxes, blank fields
    form = client.get(report_url(study, "exclusions=&exclusions=attention&min_median_response_ms=&"
                                        "familiarity=&familiarity=5&bootstrap=100&confidence_level=0.9&"
                                        "seed=&mixed_model=0"))
    assert form.status_code == 200
    assert form.context["options"] == AnalysisOptions(exclusions={"attention"}, familiarity_levels=(5,),
                                                      bootstrap_resamples=100, confidence_level=0.9,
                                                      mixed_model=False)
    assert "at familiarity 5" in form.content.decode()


def test_report_with_a_bad_option_says_which(client, study):
    page = client.get(report_url(study, "bootstrap=lots&mixed_model=0"))
    assert page.status_code == 400
    html = page.content.decode()
    assert "parameter &#x27;bootstrap&#x27;: value &#x27;lots&#x27;" in html
    assert page.context["result"] is None and 'name="bootstrap"' in html


def test_plot_downloads_are_png_and_svg(client, study):
    for name, formats in (("false_acceptance", ("png", "svg")), ("false_rejection", ("png",)),
                          ("confidence", ("svg",))):
        if "png" in formats:
            png = client.get(reverse("annotation:study-report-plot", args=[study.pk, name, "png"]) + "?" + FAST)
            assert png.status_code == 200 and png["Content-Type"] == "image/png"
            assert png.content.startswith(PNG_MAGIC)
        if "svg" in formats:
            svg = client.get(reverse("annotation:study-report-plot", args=[study.pk, name, "svg"])
                             + "?" + FAST + "&download=1")
            assert svg["Content-Type"] == "image/svg+xml"
            assert svg["Content-Disposition"] == f'attachment; filename="framing-pilot-{name}.svg"'
            assert ElementTree.fromstring(svg.content).tag == "{http://www.w3.org/2000/svg}svg"
    missing = client.get(reverse("annotation:study-report-plot", args=[study.pk, "pie", "png"]))
    assert missing.status_code == 404


def test_table_and_analysis_downloads(client, study):
    response = client.get(reverse("annotation:study-report-table", args=[study.pk, "framing_summary"]) + "?" + FAST)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    table = pd.read_csv(io.BytesIO(response.content))
    assert list(table["framing"]) == ["original", "authoritative", "consensus", "emotional", "prestige",
                                      "sensationalist", "all"]
    assert table.set_index("framing").loc["authoritative", "false_acceptance_rate"] == 1.0
    exclusions = pd.read_csv(io.BytesIO(client.get(
        reverse("annotation:study-report-table", args=[study.pk, "exclusions"]) + "?" + FAST).content))
    # persona, status, attention, fast, design-violations
    assert list(exclusions["judgments_removed"]) == [0, 6, 6, 6, 0]
    data = client.get(reverse("annotation:study-report-data", args=[study.pk, "json"]) + "?" + FAST).json()
    assert data["study"]["id"] == study.pk and data["counts"]["judgments_analysed"] == 78
    text = client.get(reverse("annotation:study-report-data", args=[study.pk, "txt"]) + "?" + FAST)
    assert b"Chi-square tests" in text.content


def test_a_study_without_judgments_gets_a_calm_report(client, researcher):
    empty = make_study(researcher, name="not started")
    page = client.get(report_url(empty))
    assert page.status_code == 200
    assert b"No judgments to analyse yet" in page.content
    plot = client.get(reverse("annotation:study-report-plot", args=[empty.pk, "false_acceptance", "png"]))
    assert plot.status_code == 200 and plot.content.startswith(PNG_MAGIC)
    csv = client.get(reverse("annotation:study-report-table", args=[empty.pk, "framing_summary"]))
    assert csv.status_code == 200


def test_only_the_owner_and_collaborators_see_the_report(client, study):
    urls = [report_url(study, FAST),
            reverse("annotation:study-report-plot", args=[study.pk, "confidence", "svg"]) + "?" + FAST,
            reverse("annotation:study-report-table", args=[study.pk, "chi_square"]) + "?" + FAST,
            reverse("annotation:study-report-data", args=[study.pk, "json"]) + "?" + FAST]
    other = get_user_model().objects.create_user("mallory", password="pw-for-tests")
    client.force_login(other)
    for url in urls:
        assert client.get(url).status_code == 404, url
    study.collaborators.add(other)
    for url in urls:
        assert client.get(url).status_code == 200, url
    client.logout()
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], url


def test_study_page_links_to_the_report(client, study):
    page = client.get(reverse("annotation:study-detail", args=[study.pk]))
    assert reverse("annotation:study-report", args=[study.pk]).encode() in page.content


def test_figures_without_intervals_and_svg_that_does_not_change():
    from annotation.analysis.plots import PLOTS, plot_bytes
    from annotation.analysis.statistics import analyze
    from tests.annotation.test_analysis import hand_table

    # Bootstrap intervals switched off (the default two-way interval takes no resamples).
    result = analyze(hand_table(), AnalysisOptions(bootstrap_resamples=0, mixed_model=False,
                                                   interval="participant-bootstrap"))
    for name in PLOTS:
        svg = plot_bytes(result, name, "svg")
        assert ElementTree.fromstring(svg).tag == "{http://www.w3.org/2000/svg}svg"
        assert svg == plot_bytes(result, name, "svg"), name
    from annotation.analysis.plots import false_acceptance_plot

    axes = false_acceptance_plot(result).axes[0]
    assert "no intervals" in axes.get_title()
    assert [bar.get_height() for bar in axes.patches] == pytest.approx([1 / 4, 1.0])  # original, authoritative


def test_report_page_leads_with_the_primary_test_and_names_its_intervals(client, study):
    page = client.get(report_url(study, "mixed_model=0"))
    assert page.status_code == 200
    html = page.content.decode()
    result = page.context["result"]
    assert result.options.interval == "two-way" and result.framing_tests["rows"]
    assert html.index("Framing effect on false acceptance") < html.index("<h2>Per framing</h2>")
    assert "permutations of framing labels within base claims" in html
    assert "two-way cluster-robust t (clustered by participant and by base claim)" in html
    assert "descriptive tests" in html and "treat every judgment as independent" in html
    # The option switches the intervals back to the participant bootstrap, named as such.
    bootstrap = client.get(report_url(study, "mixed_model=0&interval=participant-bootstrap&bootstrap=100"))
    assert bootstrap.context["options"].interval == "participant-bootstrap"
    assert "percentile cluster-bootstrap (over participants only)" in bootstrap.content.decode()
    assert '<option value="participant-bootstrap" selected>' in bootstrap.content.decode()
    csv = client.get(reverse("annotation:study-report-table", args=[study.pk, "framing_tests"]) + "?mixed_model=0")
    assert csv.status_code == 200
    table = pd.read_csv(io.StringIO(csv.content.decode()))
    assert set(table["framing"]) == {row["framing"] for row in result.framing_tests["rows"]}
    bad = client.get(report_url(study, "interval=sideways"))
    assert bad.status_code == 400 and "parameter &#x27;interval&#x27;: value &#x27;sideways&#x27;" in bad.content.decode()


def test_command_takes_the_interval_and_permutations(study, tmp_path):
    out = io.StringIO()
    call_command("analyze_study", study.name, "--format", "json", "--interval", "participant-bootstrap",
                 "--bootstrap", "100", "--permutations", "300", "--no-mixed-model", stdout=out)
    data = json.loads(out.getvalue())
    assert (data["options"]["interval"], data["options"]["permutations"]) == ("participant-bootstrap", 300)
    assert data["framing_tests"]["permutations"] == 300
    default = io.StringIO()
    call_command("analyze_study", study.name, "--no-mixed-model", "--out-dir", str(tmp_path), stdout=default,
                 stderr=io.StringIO())
    text = default.getvalue()
    assert "Framing effect on false acceptance (primary test)" in text and "two-way cluster-robust" in text
    assert "method" in pd.read_csv(tmp_path / "framing_tests.csv").columns
    with pytest.raises(CommandError, match="option --interval: value 'wide'"):
        call_command("analyze_study", study.name, "--interval", "wide")


def test_the_command_fits_the_model_itself_and_shows_its_progress(study, short_sampler, tmp_path):
    out, err = io.StringIO(), io.StringIO()
    call_command("analyze_study", str(study.pk), "--format", "json", "--permutations", "0",
                 "--out-dir", str(tmp_path), stdout=out, stderr=err)
    model = json.loads(out.getvalue())["mixed_model"]
    assert model["fitted"], model["reason"]
    assert model["n"] == 78 and model["diagnostics"]["draws"] == 200
    assert [row["framing"] for row in model["implied_rates"]][0] == "original"
    progress = [line for line in err.getvalue().splitlines() if line.startswith("mixed model:")]
    assert progress[0] == "mixed model:   0% warming up 2 chains (150 iterations each)"
    assert progress[-1] == "mixed model: 100% summarising the posterior"
    text = next(tmp_path.glob("*.txt")).read_text()
    for words in ("framing[authoritative]:true claim", "R-hat", "divergent transitions", "Implied acceptance"):
        assert words in text, words
    rates = pd.read_csv(tmp_path / "mixed_model_rates.csv")
    assert list(rates["framing"])[0] == "original" and "false_acceptance_ci_low" in rates
