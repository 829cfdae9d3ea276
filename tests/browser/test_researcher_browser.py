"""A researcher's pages in a real headless Chromium under the platform's Content-Security-Policy
(core/security_headers.py): the login form, the datasets, a study and its report with figures,
Swagger UI and the admin all work, and the browser refuses nothing."""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from annotation.models import Study
from tests.api.conftest import take_part
from tests.browser.conftest import csp_violations
from tests.browser.test_participant_browser import open_study  # noqa: F401  (a fixture)

try:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # the `chromium` fixture then skips, or fails in CI, saying what to install
    pass

PASSWORD = "a-long-pass-phrase-for-rita"


@pytest.fixture
def researcher_study(open_study):  # noqa: F811  (the imported fixture)
    rita = get_user_model().objects.create_superuser("rita", password=PASSWORD)
    Study.objects.filter(pk=open_study.pk).update(owner=rita)
    take_part(open_study, "rater-1")
    return open_study


def wait_until(driver, condition, message, timeout=60):
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition, message=message)


def test_researcher_pages_swagger_and_admin_work_under_the_policy(chromium, gunicorn_server,
                                                                   researcher_study):
    server, driver, study = gunicorn_server, chromium, researcher_study

    driver.get(f"{server.url}/accounts/login/")
    driver.find_element(By.ID, "id_username").send_keys("rita")
    driver.find_element(By.ID, "id_password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    wait_until(driver, lambda d: d.current_url.endswith("/datasets/"), "the login did not land")
    assert "FrameLab demo" in driver.page_source
    assert "script-src 'self'" in driver.execute_script(
        "return fetch(location.href).then(r => r.headers.get('Content-Security-Policy'))")

    driver.get(f"{server.url}/studies/{study.pk}/")
    assert driver.find_element(By.TAG_NAME, "h1").text

    # The report: its figures (SVG through <img>) load, the styles moved to framelab.css apply.
    driver.get(f"{server.url}/studies/{study.pk}/report/")
    wait_until(driver, lambda d: d.execute_script(
        "var imgs = document.querySelectorAll('img.plot');"
        "return imgs.length > 0 && Array.from(imgs).every(i => i.complete && i.naturalWidth > 0);"),
        "the report's figures did not load")
    assert driver.execute_script(
        "return getComputedStyle(document.querySelector('tr.total')).fontWeight") == "600"
    assert driver.execute_script(
        "return getComputedStyle(document.querySelector('label.choice')).display") == "inline"

    # Swagger UI: its script renders the API's description from the schema.
    driver.get(f"{server.url}/api/docs/")
    wait_until(driver, lambda d: "FrameLab API" in d.execute_script(
        "var t = document.querySelector('.swagger-ui .info .title'); return t ? t.textContent : '';"),
        "Swagger UI did not render")
    wait_until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock"), "no operations shown")

    # The admin: index, a list with its filters and actions, a change form with its widgets.
    driver.get(f"{server.url}/admin/")
    assert "Site administration" in driver.page_source
    driver.get(f"{server.url}/admin/auth/user/")
    wait_until(driver, lambda d: d.find_elements(By.ID, "result_list"), "no user list")
    driver.get(f"{server.url}/admin/auth/user/{get_user_model().objects.get(username='rita').pk}/change/")
    wait_until(driver, lambda d: d.find_elements(By.ID, "user_form"), "no change form")
    driver.get(f"{server.url}/admin/annotation/study/{study.pk}/change/")
    wait_until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "form"), "no study form")

    assert csp_violations(driver) == []


def test_the_report_follows_a_model_fit_and_shows_the_model_when_it_is_done(
        chromium, gunicorn_server, researcher_study):
    """The report page's script polls the fit's status (the API, with the page's session),
    moves the bar, and shows the model once the worker has stored it; no timed refresh."""
    from annotation.analysis.model_fits import model_fit_start
    from annotation.analysis.options import AnalysisOptions
    from annotation.models import ModelFit

    server, driver, study = gunicorn_server, chromium, researcher_study
    fit, _ = model_fit_start(study=study, options=AnalysisOptions())  # queued; no worker here
    ModelFit.objects.filter(pk=fit.pk).update(status="running", progress=0.0, stage="warming up 4 chains")

    driver.get(f"{server.url}/accounts/login/")
    driver.find_element(By.ID, "id_username").send_keys("rita")
    driver.find_element(By.ID, "id_password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    wait_until(driver, lambda d: d.current_url.endswith("/datasets/"), "the login did not land")
    driver.get(f"{server.url}/studies/{study.pk}/report/")
    assert driver.find_element(By.CSS_SELECTOR, "[data-stage]").text == "warming up 4 chains"
    driver.execute_script("window.framelabMarker = 'same page';")

    ModelFit.objects.filter(pk=fit.pk).update(progress=0.5, stage="drawing 1500 draws per chain")
    wait_until(driver, lambda d: d.find_element(By.CSS_SELECTOR, "[data-stage]").text
               == "drawing 1500 draws per chain", "the stage did not move", timeout=20)
    assert driver.execute_script("return document.querySelector('progress').value") == 0.5
    assert driver.execute_script("return window.framelabMarker") == "same page"  # not reloaded

    result = {"fitted": True, "reason": "", "method": "NUTS", "formula": "accept ~ framing",
              "reference_framing": "original", "n": 6, "participants": 1, "claims": 6,
              "fixed_effects": [], "random_effects": [], "implied_rates": [], "warnings": [],
              "diagnostics": {"chains": 4, "warmup": 500, "draws": 1500, "divergences": 0,
                              "max_r_hat": 1.001, "min_effective_sample_size": 2000.0,
                              "converged": True, "seconds": 12.0,
                              "thresholds": {"max_r_hat": 1.01, "min_effective_sample_size": 400}}}
    ModelFit.objects.filter(pk=fit.pk).update(status="succeeded", progress=1.0, stage="done", result=result)
    wait_until(driver, lambda d: "Sampling converged" in d.page_source, "the model did not appear", timeout=20)
    assert not driver.find_elements(By.CSS_SELECTOR, "[data-progress-url]")
    assert csp_violations(driver) == []
