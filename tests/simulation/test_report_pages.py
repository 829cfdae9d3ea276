"""The simulation pages through the real views: list, the start form (which queues the run,
executed eagerly here), the report with its figures and downloads, cancel, and access."""
import io
import re

import pandas as pd
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.urls import reverse

from annotation.models import Dataset
from simulation.models import SimulationRun
from simulation.services import simulation_run_create, simulation_run_execute

pytestmark = pytest.mark.django_db


@pytest.fixture
def researcher(client):
    user = get_user_model().objects.create_user("ada", password="x")
    client.force_login(user)
    return user


@pytest.fixture
def demo(media_root):
    call_command("load_demo", no_user=True)
    return Dataset.objects.get(name="FrameLab demo")


@pytest.fixture
def finished_run(demo):
    run = simulation_run_create(
        name="report", dataset=demo, split="test", trajectories=8, steps=4, runs=2, seed=3,
        agents=[{"kind": "parametric", "name": "credulous", "accept": {"SUPPORTS": 0.9, "REFUTES": 0.7},
                 "confidence": 0.8},
                {"kind": "oracle"}])
    return simulation_run_execute(run=run)


def test_start_form_queues_a_run_that_the_worker_finishes(client, researcher, demo, django_capture_on_commit_callbacks):
    page = client.get(reverse("simulation:run-new"))
    assert page.status_code == 200 and b'name="parametric_0_accept_true"' in page.content
    assert b'aria-label="parametric agent 1: P(accept | true claim)"' in page.content
    assert b'value="credulous"' in page.content  # a ready-made comparison to start from
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("simulation:run-new"), {
            "name": "from the web", "dataset": demo.pk, "split": "test", "policy": "frameref",
            "policy_params": "top_k=3, temperature=0.2", "candidate_mode": "exact",
            "trajectories": 6, "steps": 4, "runs": 1, "seed": 5, "shards": 2, "oracle": "on",
            "parametric_0_name": "credulous", "parametric_0_accept_true": "0.9",
            "parametric_0_accept_false": "0.7", "parametric_0_confidence": "0.8",
        })
    run = SimulationRun.objects.get(name="from the web")
    assert response.status_code == 302 and response["Location"] == reverse("simulation:run-detail", args=[run.pk])
    assert run.status == "succeeded", run.error
    assert run.created_by == researcher and run.shards_total == 2
    assert run.policy_params["top_k"] == 3 and run.policy_params["temperature"] == 0.2
    assert [a["name"] for a in run.agents] == ["credulous", "oracle"]


def test_start_form_shows_what_is_wrong(client, researcher, demo):
    response = client.post(reverse("simulation:run-new"), {
        "name": "too long", "dataset": demo.pk, "split": "test", "policy": "frameref", "candidate_mode": "exact",
        "trajectories": 5, "steps": 50, "runs": 1, "seed": 0, "shards": 1, "oracle": "on"})
    assert response.status_code == 200
    assert b"field &#x27;steps&#x27;: value 50" in response.content and b"accepted: at most 6" in response.content
    response = client.post(reverse("simulation:run-new"), {
        "name": "half a row", "dataset": demo.pk, "split": "test", "policy": "frameref", "candidate_mode": "exact",
        "trajectories": 5, "steps": 3, "runs": 1, "seed": 0, "shards": 1, "parametric_0_name": "p",
        "parametric_0_accept_true": "0.5"})
    assert b"give a name and all three numbers" in response.content
    response = client.post(reverse("simulation:run-new"), {
        "name": "json", "dataset": demo.pk, "split": "test", "policy": "frameref", "candidate_mode": "exact",
        "trajectories": 5, "steps": 3, "runs": 1, "seed": 0, "shards": 1, "agents_json": '[{"kind": "robot"}]'})
    assert b"field &#x27;kind&#x27;: value &#x27;robot&#x27;" in response.content
    assert not SimulationRun.objects.exists()


def test_report_shows_the_tables_and_links_every_download(client, researcher, finished_run):
    run = finished_run
    page = client.get(reverse("simulation:run-detail", args=[run.pk])).content.decode()
    assert "succeeded" in page and 'http-equiv="refresh"' not in page
    oracle_row = re.search(r'<th scope="row">oracle</th>\s*<td class="num">([^<]+)</td>', page)
    assert oracle_row and oracle_row.group(1) == "2.500"  # H_t = t, mean over T = 4
    assert "Differences between agents" in page and "minus the run's first agent, credulous" in page
    for kind in ("health", "cumulative"):
        for fmt in ("png", "svg"):
            url = reverse("simulation:run-figure", args=[run.pk, kind, fmt])
            assert url in page
            response = client.get(url + "?download=1")
            assert response.status_code == 200 and response["Content-Type"] == {"png": "image/png", "svg": "image/svg+xml"}[fmt]
            assert f'filename="simulation-{run.pk}-{kind}.{fmt}"' in response["Content-Disposition"]
            body = response.content
            assert body.startswith(b"\x89PNG") if fmt == "png" else b"<svg" in body and b"oracle" in body

    agents_csv = client.get(reverse("simulation:run-table", args=[run.pk, "agents", "csv"]))
    table = pd.read_csv(io.BytesIO(agents_csv.content))
    assert list(table["agent"]) == ["credulous", "oracle"] and table.loc[1, "mean_IH"] == 2.5
    differences = pd.read_parquet(io.BytesIO(client.get(
        reverse("simulation:run-table", args=[run.pk, "differences", "parquet"])).content))
    assert set(differences["metric"]) == {"mean_IH", "final_H", "p_correct"}
    curves = pd.read_csv(io.BytesIO(client.get(reverse("simulation:run-table", args=[run.pk, "curves", "csv"])).content))
    assert len(curves) == 2 * 4

    steps = client.get(reverse("simulation:run-steps", args=[run.pk]))
    assert steps.status_code == 200
    frame = pd.read_parquet(io.BytesIO(b"".join(steps.streaming_content)))
    assert len(frame) == 2 * 2 * 8 * 4

    assert client.get(reverse("simulation:run-table", args=[run.pk, "secrets", "csv"])).status_code == 404
    assert client.get(reverse("simulation:run-figure", args=[run.pk, "health", "pdf"])).status_code == 404

    listing = client.get(reverse("simulation:run-list")).content.decode()
    assert f"#{run.pk} report" in listing and "credulous, oracle" in listing


def test_report_by_frameref_conventions(client, researcher, finished_run):
    """The report's FrameRef toggle shows the notebook's summary of the same run: the oracle's
    H_t = t gives mean_IH (1+2+3+4) / 3; its curve H_t / (t - 1) has no first step; claims are
    counted per run of 8 trajectories; the downloads follow the toggle."""
    run = finished_run
    url = reverse("simulation:run-detail", args=[run.pk])
    page = client.get(url + "?conventions=frameref").content.decode()
    assert "FrameRef's notebook conventions" in page
    oracle_row = re.search(r'<th scope="row">oracle</th>\s*<td class="num">([^<]+)</td>', page)
    assert oracle_row and oracle_row.group(1) == "3.333"
    assert reverse("simulation:run-figure", args=[run.pk, "health", "svg"]) + "?conventions=frameref" in page
    table = pd.read_csv(io.BytesIO(client.get(
        reverse("simulation:run-table", args=[run.pk, "agents", "csv"]) + "?conventions=frameref").content))
    platform = pd.read_csv(io.BytesIO(client.get(reverse("simulation:run-table", args=[run.pk, "agents", "csv"])).content))
    assert table.loc[1, "mean_IH"] == pytest.approx(10 / 3)
    assert (table["true_claims"] + table["false_claims"]).tolist() == [8 * 4, 8 * 4]  # per run of 8
    assert (platform["true_claims"] + platform["false_claims"]).tolist() == [4, 4]     # per trajectory
    curves = pd.read_csv(io.BytesIO(client.get(
        reverse("simulation:run-table", args=[run.pk, "curves", "csv"]) + "?conventions=frameref").content))
    oracle = curves[curves["agent"] == "oracle"].sort_values("step")
    assert oracle["mean_H_per_step"].isna().tolist() == [True, False, False, False]
    assert oracle["mean_H_per_step"].iloc[1:].tolist() == pytest.approx([2.0, 1.5, 4 / 3])
    figure = client.get(reverse("simulation:run-figure", args=[run.pk, "health", "svg"]) + "?conventions=frameref&download=1")
    assert figure.status_code == 200 and "health-frameref.svg" in figure["Content-Disposition"]
    assert client.get(url + "?conventions=notebook").status_code == 404
    # A run summarised before the FrameRef tables were stored says so instead of failing.
    SimulationRun.objects.filter(pk=run.pk).update(summary={k: v for k, v in run.summary.items() if k != "frameref"})
    page = client.get(url + "?conventions=frameref").content.decode()
    assert "summarised before FrameRef's conventions were stored" in page
    assert client.get(reverse("simulation:run-table", args=[run.pk, "agents", "csv"])
                      + "?conventions=frameref").status_code == 404


def test_a_running_run_refreshes_and_can_be_cancelled(client, researcher, demo):
    run = simulation_run_create(name="long", dataset=demo, split="test", trajectories=8, steps=4, runs=1, seed=0,
                                agents=[{"kind": "oracle"}])
    SimulationRun.objects.filter(pk=run.pk).update(status="running", progress=0.4, shards_total=4, shards_done=1)
    page = client.get(reverse("simulation:run-detail", args=[run.pk])).content.decode()
    assert 'http-equiv="refresh"' in page and 'value="40"' in page and "shards done 1 of 4" in page
    assert client.get(reverse("simulation:run-figure", args=[run.pk, "health", "png"])).status_code == 404
    response = client.post(reverse("simulation:run-cancel", args=[run.pk]), follow=True)
    run.refresh_from_db()
    assert run.status == "cancelled" and run.cancel_requested
    assert b"cancelled" in response.content and b'http-equiv="refresh"' not in response.content


def test_pages_need_a_login(client, finished_run):
    for url in (reverse("simulation:run-list"), reverse("simulation:run-new"),
                reverse("simulation:run-detail", args=[finished_run.pk]),
                reverse("simulation:run-steps", args=[finished_run.pk])):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert client.post(reverse("simulation:run-cancel", args=[finished_run.pk])).status_code == 302


def test_start_form_takes_the_personas_decision_rule(client, researcher, demo, media_root,
                                                     django_capture_on_commit_callbacks):
    """The form's one-word rule reaches the stored persona spec and the run executes with it;
    a rule that cannot be read is shown beside the field and nothing is created."""
    import numpy as np

    from simulation.selectors import pool_claims
    from tests.simulation.test_agent_builders import persona_with_table, score_rows

    pool = pool_claims(dataset=demo, split="test")
    p_s = np.linspace(0.2, 0.8, len(pool))
    persona = persona_with_table(media_root, demo, score_rows(pool, p_s, 1 - p_s), name="sampler")
    assert b'name="decision"' in client.get(reverse("simulation:run-new")).content
    form = {"name": "sampled", "dataset": demo.pk, "split": "test", "policy": "frameref", "candidate_mode": "exact",
            "trajectories": 6, "steps": 4, "runs": 1, "seed": 5, "shards": 2, "personas": [persona.pk]}
    response = client.post(reverse("simulation:run-new"), dict(form, decision="greedy"))
    assert response.status_code == 200 and b"decision &#x27;greedy&#x27;: accepted: argmax, frameref" in response.content
    assert not SimulationRun.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("simulation:run-new"), dict(form, decision="frameref"))
    run = SimulationRun.objects.get(name="sampled")
    assert run.status == "succeeded", run.error
    assert run.agents[0]["decision"] == "frameref"
