"""The documentation stands alone and stays true to the repository.

- The Method page shows docs/method.md to anyone, with one h1, headings in order and a
  fixed anchor for every numbered section; raw HTML in the Markdown is escaped.
- Every link to a section of the method (from the pages, the API descriptions, the docs) and
  every "method.md section N" in code names a section that exists.
- Every Python file the README, docs/*.md and bench/README.md mention exists.
- No tracked file points outside the repository at the shared planning folder.
"""
from __future__ import annotations

import html
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from config.method import github_slug, method_document, render_markdown, section_anchor
from django.http import Http404

ROOT = Path(__file__).resolve().parents[1]
METHOD = ROOT / "docs" / "method.md"
DOCS = [ROOT / "README.md", ROOT / "bench" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*$")
_NUMBER = re.compile(r"^(\d+(?:\.\d+)*)\.?\s")


def _source_headings() -> list[tuple[int, str]]:
    """(level, text) of every heading of docs/method.md, read from the Markdown itself."""
    headings, fenced = [], False
    for line in METHOD.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
            continue
        match = None if fenced else _HEADING.match(line)
        if match:
            headings.append((len(match.group(1)), match.group(2)))
    return headings


def _section_numbers() -> set[str]:
    return {m.group(1) for _, text in _source_headings() if (m := _NUMBER.match(text))}


def _ids(page: str) -> list[str]:
    return re.findall(r'\sid="([^"]+)"', page)


def _tracked_files(*suffixes: str) -> list[Path]:
    if shutil.which("git") and (ROOT / ".git").exists():
        listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
        files = [ROOT / name for name in listed.stdout.splitlines()]
    else:
        skip = {".venv", "var", "node_modules", ".git"}
        files = [path for path in ROOT.rglob("*") if not skip & set(path.relative_to(ROOT).parts)]
    return [path for path in files if path.suffix in suffixes and path.is_file()]


# --- the Method page ----------------------------------------------------------------------

@pytest.mark.django_db
def test_method_page_renders_for_an_anonymous_visitor_with_every_heading_and_anchor(client):
    response = client.get("/method/")
    assert response.status_code == 200
    page = response.content.decode()
    assert '<html lang="en">' in page

    levels = [int(level) for level in re.findall(r"<h([1-6])[\s>]", page)]
    assert levels.count(1) == 1 and levels[0] == 1
    assert all(later <= earlier + 1 for earlier, later in zip(levels, levels[1:])), levels

    ids = _ids(page)
    assert len(ids) == len(set(ids)), "an anchor is used twice"
    for level, text in _source_headings():
        rendered = re.search(rf"<h{level}[^>]*>(?:<span[^>]*></span>)?{re.escape(html.escape(text, quote=False))}</h{level}>",
                             page)
        assert rendered, f"heading {text!r} is not on the page as an h{level}"
        assert github_slug(text) in ids, text
        number = _NUMBER.match(text)
        if number:
            assert f'<h{level} id="{section_anchor(number.group(1))}">' in page, text


def test_the_method_names_frameref_and_has_a_section_of_departures():
    text = METHOD.read_text(encoding="utf-8")
    assert "arXiv:2602.15273" in text and "De Lima" in text
    departures = [t for _, t in _source_headings() if t.startswith("6.")]
    for topic in ("Learning rate", "padding", "BOS", "forward pass", "Summary conventions"):
        assert any(topic in title for title in departures), topic


@pytest.mark.django_db
def test_method_is_in_the_navigation_for_visitors_and_researchers(client, django_user_model):
    nav = re.search(r'<nav aria-label="Main">(.*?)</nav>', client.get("/accounts/login/").content.decode(), re.S)
    assert nav and 'href="/method/">Method</a>' in nav.group(1)
    client.force_login(django_user_model.objects.create_user("reader", password="pw"))
    nav = re.search(r'<nav aria-label="Main">(.*?)</nav>', client.get("/method/").content.decode(), re.S)
    assert 'href="/method/">Method</a>' in nav.group(1)


def test_markdown_is_rendered_safely():
    rendered = render_markdown(
        "# Title <b>bold</b>\n\n<script>alert(1)</script>\n\n[click](javascript:alert(1))\n\n"
        "<img src=x onerror=alert(1)>\n\n## 2. Section\n")
    assert "<script" not in rendered.html and "&lt;script&gt;" in rendered.html
    assert "<img" not in rendered.html and "<b>" not in rendered.html
    assert 'href="javascript' not in rendered.html
    assert '<h2 id="section-2"><span id="2-section"></span>2. Section</h2>' in rendered.html


def test_a_missing_method_file_is_a_404(tmp_path):
    with pytest.raises(Http404):
        method_document(tmp_path / "method.md")


# --- links and references to the method ---------------------------------------------------

def test_contents_and_links_into_the_method_point_at_existing_anchors():
    ids = set(_ids(method_document().html))
    own = re.findall(r"\]\(#([^)]+)\)", METHOD.read_text(encoding="utf-8"))
    assert own, "the method has no contents list"
    missing = [f"method.md: #{anchor}" for anchor in own if anchor not in ids]
    for doc in DOCS:
        for anchor in re.findall(r"method\.md#([\w-]+)", doc.read_text(encoding="utf-8")):
            if anchor not in ids:
                missing.append(f"{doc.relative_to(ROOT)}: method.md#{anchor}")
    for path in _tracked_files(".html", ".py"):
        text = path.read_text(encoding="utf-8", errors="replace")
        for anchor in re.findall(r"(?:/method/|\{% url 'method' %\})#([\w-]+)", text):
            if anchor not in ids:
                missing.append(f"{path.relative_to(ROOT)}: #{anchor}")
    assert not missing, missing


def test_every_method_section_named_in_the_code_exists():
    sections = _section_numbers()
    reference = re.compile(r"method\.md,?\s+(?:section\s+)?(\d+(?:\.\d+)*)")
    wrong = []
    for path in _tracked_files(".py", ".html", ".md"):
        if path == METHOD:
            continue
        for number in reference.findall(path.read_text(encoding="utf-8", errors="replace")):
            if number not in sections:
                wrong.append(f"{path.relative_to(ROOT)}: method.md section {number}")
    assert not wrong, wrong


def test_pages_link_to_method_sections_instead_of_citing_the_file():
    """A section a researcher is pointed to on a page is a link to /method/, not a file name."""
    citation = re.compile(r"method\.md['’]?s?,?\s+(?:section\s+)?\d|of method\.md\b")
    offenders = [str(path.relative_to(ROOT)) for path in _tracked_files(".html")
                 if citation.search(path.read_text(encoding="utf-8"))]
    assert not offenders, offenders


# --- the docs describe the repository as it is --------------------------------------------

def test_every_python_file_the_docs_mention_exists():
    names = {path.name for path in ROOT.rglob("*.py") if ".venv" not in path.parts}
    missing = []
    for doc in DOCS:
        for token in sorted(set(re.findall(r"[\w./-]*\w\.py\b", doc.read_text(encoding="utf-8")))):
            if "/" in token:
                relative = token.removeprefix("./").removeprefix("../")
                if not ((ROOT / relative).exists() or (doc.parent / token).exists()):
                    missing.append(f"{doc.relative_to(ROOT)}: {token}")
            elif token not in names:
                missing.append(f"{doc.relative_to(ROOT)}: {token}")
    assert not missing, missing


def test_no_tracked_file_points_at_the_shared_folder_outside_the_repository():
    if not (shutil.which("git") and (ROOT / ".git").exists()):
        pytest.skip("not a git checkout")
    found = subprocess.run(["git", "grep", "-n", "-I", "-e", r"\.\./shared"], cwd=ROOT,
                           capture_output=True, text=True)
    assert found.returncode == 1, found.stdout
