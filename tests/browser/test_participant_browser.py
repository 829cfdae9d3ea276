"""One participant session in a real headless Chromium against a real gunicorn: consent to
completion code, answered with the keyboard, a reload and a re-entry in the middle that resume,
and double submissions that store one judgment; then the pages' accessibility at phone size.
Both run under the platform's Content-Security-Policy, and the browser refuses nothing."""
from __future__ import annotations

import pytest
from django.core.management import call_command

from annotation.models import Dataset, Judgment, Participant, Study
from annotation.studies.services import study_create
from tests.browser.conftest import csp_violations

try:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # the `chromium` fixture then skips, or fails in CI, saying what to install
    pass

PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True}
SCREENSHOT = "/tmp/framelab-item-phone.png"
# What the participant presses on each item: Yes/No, confidence, familiarity.
KEYS = {1: ("y", 4, 2), 2: ("n", 2, 5), 3: ("y", 5, 1), 4: ("n", 1, 3), 5: ("y", 3, 4), 6: ("n", 4, 4)}


@pytest.fixture
def open_study(transactional_db):
    call_command("load_demo", no_user=True)
    return study_create(dataset=Dataset.objects.get(name="FrameLab demo"), name="browser",
                        base_claims=8, batch_size=6, raters_per_batch=1, seed=11,
                        status=Study.Status.OPEN, completion_code="BROWSER1", completion_url="")


def entry_url(server, study, pid="browser-1"):
    return f"{server.url}/s/{study.pk}/?PROLIFIC_PID={pid}&STUDY_ID=s&SESSION_ID=x"


def wait_for_path(driver, suffix, timeout=15):
    WebDriverWait(driver, timeout, poll_frequency=0.05).until(
        lambda d: d.current_url.split("?")[0].endswith(suffix) and
        d.execute_script("return document.readyState") == "complete",
        message=f"expected a page ending in {suffix}")
    return driver.current_url


def press(driver, *keys):
    ActionChains(driver).send_keys(*keys).perform()


def checked(driver, name):
    return driver.execute_script(
        "var c = document.querySelector('input[name=' + arguments[0] + ']:checked');"
        "return c ? c.value : null;", name)


def answer_with_keyboard(driver, position):
    """Presses Y/N and two digits, and checks that they picked the intended radios."""
    accurate, confidence, familiarity = KEYS[position]
    press(driver, accurate, str(confidence), str(familiarity))
    picked = [checked(driver, name) for name in ("accurate", "confidence", "familiarity")]
    assert picked == ["yes" if accurate == "y" else "no", str(confidence), str(familiarity)]


def progress(driver):
    return driver.find_element(By.ID, "progress").text


def no_errors(driver):
    assert not driver.find_elements(By.CSS_SELECTOR, ".error"), driver.page_source[:2000]


def post_lines(server, path):
    return [line for line in server.log().splitlines() if f'"POST {path} ' in line]


def test_a_full_session_in_chromium_with_keyboard_reload_and_double_submit(
        chromium, gunicorn_server, open_study):
    server, driver, study = gunicorn_server, chromium, open_study

    driver.get(entry_url(server, study))
    wait_for_path(driver, "/consent/")
    assert "script-src 'self'" in driver.execute_script(
        "return fetch(location.href).then(r => r.headers.get('Content-Security-Policy'))")
    assert driver.find_element(By.TAG_NAME, "h1").text == "Information and consent"
    consent = driver.find_element(By.ID, "consent")
    consent.click()
    assert consent.is_selected()
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait_for_path(driver, "/instructions/")
    participant = Participant.objects.get(study=study)
    assert (participant.external_id, participant.status) == ("browser-1", "active")
    assert (participant.platform_study_id, participant.platform_session_id) == ("s", "x")
    item_path = f"/s/{study.pk}/p/{participant.token}/item/"

    driver.find_element(By.ID, "start").click()
    wait_for_path(driver, f"{item_path}1/")
    for position in range(1, 7):
        assert progress(driver) == f"Claim {position} of 6"
        assert driver.title.startswith(f"Claim {position} of 6")
        no_errors(driver)
        answer_with_keyboard(driver, position)
        if position == 4:
            # Enter twice in quick succession: the page sends one submission.
            press(driver, Keys.ENTER, Keys.ENTER)
        elif position == 5:
            # Keep the body the page really submits, then click Next twice in one go.
            driver.execute_script(
                "var form = document.getElementById('judgment');"
                "form.addEventListener('submit', function () {"
                "  if (!sessionStorage.getItem('sent')) sessionStorage.setItem('sent',"
                "    new URLSearchParams(new FormData(form)).toString());"
                "});"
                "var next = document.getElementById('next'); next.click(); next.click();")
        else:
            assert driver.switch_to.active_element.get_attribute("name") == "familiarity"
            press(driver, Keys.ENTER)
        wait_for_path(driver, f"{item_path}{position + 1}/" if position < 6 else "/done/")

        if position == 3:
            # A reload stores nothing twice and shows item 4 again, even with half an answer.
            assert Judgment.objects.filter(participant=participant).count() == 3
            press(driver, "y", "2")
            driver.refresh()
            wait_for_path(driver, f"{item_path}4/")
            assert progress(driver) == "Claim 4 of 6"
            # Chromium does not restore the half-answer on reload: the page starts empty.
            assert [checked(driver, name) for name in ("accurate", "confidence", "familiarity")] == [
                None, None, None]
            # Coming back through the recruitment link resumes at the same place.
            driver.get(entry_url(server, study))
            wait_for_path(driver, f"{item_path}4/")
            assert progress(driver) == "Claim 4 of 6"
            assert Participant.objects.filter(study=study).count() == 1
            assert Judgment.objects.filter(participant=participant).count() == 3
        if position == 4:
            no_errors(driver)
            assert Judgment.objects.filter(participant=participant, position=4).count() == 1
        if position == 5:
            no_errors(driver)
            body = driver.execute_script("return sessionStorage.getItem('sent');")
            assert body and "ticket=" in body and "response_time_ms=" in body
            # The same submission again, twice at once, as a browser or proxy retry would send
            # it: one judgment, unchanged, and both retries land on the next open item.
            results = driver.execute_async_script(
                "var action = arguments[0], body = arguments[1], done = arguments[arguments.length - 1];"
                "function send() { return fetch(action, {method: 'POST', body: body,"
                "  headers: {'Content-Type': 'application/x-www-form-urlencoded'}})"
                "  .then(function (r) { return [r.status, r.url]; }); }"
                "Promise.all([send(), send()]).then(done, function (e) { done(String(e)); });",
                f"{server.url}{item_path}5/", body)
            assert [status for status, _ in results] == [200, 200], results
            assert all(url.endswith(f"{item_path}6/") for _, url in results), results
            assert Judgment.objects.filter(participant=participant, position=5).count() == 1

    assert driver.find_element(By.TAG_NAME, "h1").text == "Thank you!"
    assert driver.find_element(By.ID, "completion-code").text == "BROWSER1"
    assert not driver.find_elements(By.ID, "completion-link")  # no completion URL in this study

    participant.refresh_from_db()
    assert participant.status == "completed" and participant.completed_at is not None
    judgments = list(Judgment.objects.filter(participant=participant).order_by("position"))
    assert [(j.position, j.accept, j.confidence, j.familiarity) for j in judgments] == [
        (p, a == "y", c, f) for p, (a, c, f) in KEYS.items()]
    assert all(j.response_time_ms is not None and j.response_time_ms > 0 for j in judgments), [
        j.response_time_ms for j in judgments]
    assert all(j.revisions == 0 for j in judgments)
    # The page itself sent item 4 and item 5 once each; the two replays of item 5 came after.
    assert len(post_lines(server, f"{item_path}4/")) == 1, post_lines(server, f"{item_path}4/")
    assert len(post_lines(server, f"{item_path}5/")) == 3, post_lines(server, f"{item_path}5/")
    # The completion page stays where a returning participant lands.
    driver.get(entry_url(server, study))
    wait_for_path(driver, "/done/")
    assert Participant.objects.filter(study=study).count() == 1
    # The keyboard shortcuts and timing above came from participant.js under the policy; the
    # browser refused nothing on any page.
    assert csp_violations(driver) == []


def layout_problems(driver):
    """What overflows a phone's width: the page itself, or any visible element."""
    return driver.execute_script("""
        var width = window.innerWidth, scrolled = document.documentElement.scrollWidth, problems = [];
        if (scrolled > width) problems.push('page scrolls sideways: ' + scrolled + ' > ' + width);
        document.querySelectorAll('main *').forEach(function (el) {
            var box = el.getBoundingClientRect();
            if (box.width && (box.right > width + 0.5 || box.left < -0.5))
                problems.push(el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + ' spans ' +
                              Math.round(box.left) + '..' + Math.round(box.right));
        });
        return problems;""")


def accessibility_problems(driver):
    """Unlabelled radios, questions that are not one fieldset with a legend, and the like."""
    return driver.execute_script("""
        var problems = [], radios = Array.from(document.querySelectorAll('input[type=radio]'));
        radios.forEach(function (radio) {
            var label = Array.from(radio.labels).map(function (l) { return l.textContent.trim(); });
            if (!label.join('')) problems.push('radio ' + radio.id + ' has no label');
            var fieldset = radio.closest('fieldset');
            var legend = fieldset && fieldset.querySelector(':scope > legend');
            if (!legend || !legend.textContent.trim())
                problems.push('radio ' + radio.id + ' is not in a fieldset with a legend');
        });
        new Set(radios.map(function (r) { return r.name; })).forEach(function (name) {
            var sets = new Set(radios.filter(function (r) { return r.name === name; })
                                     .map(function (r) { return r.closest('fieldset'); }));
            if (sets.size !== 1) problems.push(name + ' is spread over ' + sets.size + ' fieldsets');
        });
        if (!document.documentElement.lang) problems.push('no lang on <html>');
        if (!document.title.trim()) problems.push('no title');
        // The claim pages have no h1 (see the report); the others have exactly one.
        if (!document.getElementById('judgment') && document.querySelectorAll('h1').length !== 1)
            problems.push('not exactly one h1');
        document.querySelectorAll('button, a[href]').forEach(function (el) {
            if (!el.textContent.trim() && !el.getAttribute('aria-label'))
                problems.push('unnamed ' + el.tagName);
        });
        return problems;""")


def small_targets(driver, minimum=24):
    """Clickable things smaller than WCAG 2.2's 24 x 24 CSS pixels (a checkbox or radio counts
    through its label, which takes the click too)."""
    return driver.execute_script("""
        var minimum = arguments[0], small = [];
        document.querySelectorAll('label, button, a[href]').forEach(function (el) {
            var box = el.getBoundingClientRect();
            if (box.width < minimum || box.height < minimum)
                small.push((el.id || el.textContent.trim() || el.tagName) + ' ' +
                           Math.round(box.width) + 'x' + Math.round(box.height));
        });
        return small;""", minimum)


def test_participant_pages_are_accessible_and_fit_a_phone(chromium, gunicorn_server, open_study):
    """The same pages at 390 x 844, answered by tapping the labels instead of the keyboard."""
    server, driver, study = gunicorn_server, chromium, open_study
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)
    driver.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": True})

    driver.get(entry_url(server, study, pid="phone-1"))
    wait_for_path(driver, "/consent/")
    assert driver.execute_script("return window.innerWidth") == 390
    assert layout_problems(driver) == []
    assert accessibility_problems(driver) == []
    assert small_targets(driver) == []
    # Continuing without the tick: the browser's own check (required) keeps the page here.
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    assert driver.current_url.split("?")[0].endswith("/consent/")
    assert driver.execute_script("return document.getElementById('consent').validity.valueMissing")
    driver.find_element(By.CSS_SELECTOR, "label[for=consent]").click()
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait_for_path(driver, "/instructions/")
    assert layout_problems(driver) == []
    assert accessibility_problems(driver) == []
    driver.find_element(By.ID, "start").click()
    participant = Participant.objects.get(study=study, external_id="phone-1")

    for position in range(1, 7):
        wait_for_path(driver, f"/item/{position}/")
        assert progress(driver) == f"Claim {position} of 6"
        assert layout_problems(driver) == []
        assert accessibility_problems(driver) == []
        assert small_targets(driver) == []
        fieldsets = driver.find_elements(By.CSS_SELECTOR, "form#judgment fieldset")
        assert [f.get_attribute("id") for f in fieldsets] == [
            "q-accurate", "q-confidence", "q-familiarity"]
        legends = [f.find_element(By.CSS_SELECTOR, ":scope > legend").text for f in fieldsets]
        assert legends[0].startswith("Is this accurate?") and all(legends), legends
        assert len(driver.find_elements(By.CSS_SELECTOR, "input[type=radio]")) == 12
        if position == 1:
            driver.save_screenshot(SCREENSHOT)
            # Next without answers: the server says what is missing, per question.
            driver.find_element(By.ID, "next").click()
            WebDriverWait(driver, 15, poll_frequency=0.05).until(
                lambda d: d.find_elements(By.CSS_SELECTOR, "p.error[role=alert]"))
            invalid = driver.find_elements(By.CSS_SELECTOR, "fieldset[aria-invalid=true]")
            assert [f.get_attribute("aria-describedby") for f in invalid] == [
                "e-accurate", "e-confidence", "e-familiarity"]
            assert layout_problems(driver) == []
            assert not Judgment.objects.filter(participant=participant).exists()
        accurate, confidence, familiarity = KEYS[position]
        for name, value in (("accurate", "yes" if accurate == "y" else "no"),
                            ("confidence", str(confidence)), ("familiarity", str(familiarity))):
            radio = driver.find_element(By.CSS_SELECTOR, f"input[name={name}][value='{value}']")
            driver.find_element(By.CSS_SELECTOR, f"label[for={radio.get_attribute('id')}]").click()
            assert checked(driver, name) == value
        driver.find_element(By.ID, "next").click()

    wait_for_path(driver, "/done/")
    assert driver.find_element(By.ID, "completion-code").text == "BROWSER1"
    assert layout_problems(driver) == []
    assert accessibility_problems(driver) == []
    judgments = Judgment.objects.filter(participant=participant).order_by("position")
    assert [(j.accept, j.confidence, j.familiarity) for j in judgments] == [
        (a == "y", c, f) for a, c, f in KEYS.values()]
    assert all(j.response_time_ms and j.response_time_ms > 0 for j in judgments)
    assert csp_violations(driver) == []
