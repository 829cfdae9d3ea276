"""The Method page: docs/method.md rendered as HTML, for researchers who never open a terminal.

The Markdown is the repository's own, but it is rendered as if it were not: raw HTML in it is
escaped, never passed through, and links with unsafe schemes (javascript: and the like) are
refused by the parser. Every heading gets an id. A numbered heading ("3.3 Scoring a claim")
gets the fixed anchor `section-3-3`, the one the code and the other pages link to, and also
keeps the anchor GitHub derives from its text (`33-scoring-a-claim`), so the page's own
contents links work both here and on GitHub.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.http import Http404
from django.shortcuts import render
from django.utils.safestring import mark_safe
from markdown_it import MarkdownIt
from markdown_it.token import Token

METHOD_FILE = Path(settings.REPO_ROOT) / "docs" / "method.md"

_NUMBERED = re.compile(r"^(\d+(?:\.\d+)*)\.?\s")
# GitHub keeps letters, digits, underscores, hyphens and spaces; spaces become hyphens.
_NOT_SLUG = re.compile(r"[^\w\- ]", re.UNICODE)


@dataclass(frozen=True)
class Heading:
    level: int
    text: str
    anchor: str
    github_anchor: str


@dataclass(frozen=True)
class RenderedMarkdown:
    html: str
    headings: tuple[Heading, ...]


def section_anchor(number: str) -> str:
    """The fixed anchor of a numbered section: "3.3" -> "section-3-3"."""
    return "section-" + number.replace(".", "-")


def github_slug(text: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    return _NOT_SLUG.sub("", text.strip().lower()).replace(" ", "-")


def _plain_text(inline: Token) -> str:
    return "".join(child.content for child in inline.children or ()
                   if child.type in ("text", "code_inline"))


def _unique(anchor: str, seen: dict[str, int]) -> str:
    count = seen.get(anchor, 0)
    seen[anchor] = count + 1
    return anchor if count == 0 else f"{anchor}-{count}"


def render_markdown(text: str) -> RenderedMarkdown:
    """Markdown (CommonMark and tables) to HTML, raw HTML escaped, with an id on every heading."""
    parser = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = parser.parse(text)
    headings: list[Heading] = []
    seen: dict[str, int] = {}
    for index, token in enumerate(tokens):
        if token.type != "heading_open":
            continue
        inline = tokens[index + 1]
        plain = _plain_text(inline)
        slug = _unique(github_slug(plain), seen)
        numbered = _NUMBERED.match(plain)
        anchor = _unique(section_anchor(numbered.group(1)), seen) if numbered else slug
        token.attrSet("id", anchor)
        if anchor != slug:
            # A second, empty target for the GitHub-style anchor. Both ids are made of
            # letters, digits, underscores and hyphens only, so nothing here needs escaping.
            extra = Token("html_inline", "", 0, content=f'<span id="{slug}"></span>')
            inline.children = [extra, *(inline.children or [])]
        headings.append(Heading(level=int(token.tag[1]), text=plain, anchor=anchor, github_anchor=slug))
    html = parser.renderer.render(tokens, parser.options, {})
    return RenderedMarkdown(html=html, headings=tuple(headings))


@lru_cache(maxsize=4)
def _rendered(path: str, modified_ns: int, size: int) -> RenderedMarkdown:
    # Keyed on the file's modification time and size: an edited file is rendered again.
    return render_markdown(Path(path).read_text(encoding="utf-8"))


def method_document(path: Path = METHOD_FILE) -> RenderedMarkdown:
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise Http404("docs/method.md is missing from this installation") from None
    return _rendered(str(path), stat.st_mtime_ns, stat.st_size)


def method_page(request):
    """Anyone may read the method, signed in or not: it is the published method, no study data."""
    document = method_document()
    title = next((h.text for h in document.headings if h.level == 1), "Method")
    return render(request, "method.html", {"title": title, "body": mark_safe(document.html)})
