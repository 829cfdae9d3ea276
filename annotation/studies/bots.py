"""Simulated participants that take a study through its real HTTP pages, as a person would.

A `Bot` enters with a Prolific-style id, gives consent, reads each item page, parses the
form (its signed ticket and action) and the claim text, answers by a policy, submits and
follows the redirects until the completion page. Every request is timed and kept with its
outcome, so load tests and benchmarks can report latencies, and every submission the
server acknowledged (a redirect after the POST) is kept, so tests can check it was stored.

Only the standard library is used (http.client, threads), so the module runs anywhere,
against any FrameLab server, without Django; the `run_bots` management command and the
tests add what needs the database (the study's id, and the truth table of `TruthfulPolicy`
from `annotation.studies.selectors.study_truth_table`).

    report = run_bots(base_url="http://127.0.0.1:8000", study_id=3, participants=50,
                      concurrency=10, policy=make_policy("random"), seed=1)
    print(report.summary())

A bot the study turns away (full, paused or closed) ends with the outcome "turned away",
which is not an error; anything the flow does not expect (a 5xx, a 409, a form without a
ticket, a resumed session at the wrong item, a refused connection) is an error with a
message naming the request.
"""
from __future__ import annotations

import html
import http.client
import json
import random
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from urllib.parse import urlencode, urljoin, urlsplit

COMPLETED = "completed"
TURNED_AWAY = "turned away"
LEFT = "left"  # stopped on purpose after `leave_after` answers, like a participant who quits
ERROR = "error"

# Kinds of request a bot makes; SHOW and SUBMIT are the two the summaries report.
ENTER = "enter"
CONSENT = "consent"
INSTRUCTIONS = "instructions"
SHOW = "show item"
SUBMIT = "submit"
DUPLICATE = "duplicate submit"
DONE = "done"
OTHER = "other"

USER_AGENT = "FrameLab-bot/1"


class BotError(Exception):
    """The flow went somewhere it should not; the message names the request."""


class TurnedAway(Exception):
    """The study does not take this participant (full, paused or closed)."""


class Left(Exception):
    """The bot quit on purpose (`leave_after`)."""


# --- Answering policies -----------------------------------------------------------------

@dataclass(frozen=True)
class Choice:
    """One answer to an item: the form's three questions."""

    accurate: bool
    confidence: int
    familiarity: int


class Policy:
    """How a bot answers; `answer` sees the claim's text (unescaped) and the bot's RNG."""

    name = "policy"

    def answer(self, text: str, rng: random.Random) -> Choice:  # pragma: no cover - abstract
        raise NotImplementedError


class RandomPolicy(Policy):
    """Yes or No with equal chance, confidence and familiarity uniform over 1..5."""

    name = "random"

    def answer(self, text: str, rng: random.Random) -> Choice:
        return Choice(rng.random() < 0.5, rng.randint(1, 5), rng.randint(1, 5))


class CredulousPolicy(Policy):
    """Believes everything: always Yes, with high confidence (4 or 5)."""

    name = "credulous"

    def answer(self, text: str, rng: random.Random) -> Choice:
        return Choice(True, rng.randint(4, 5), rng.randint(1, 5))


class TruthfulPolicy(Policy):
    """Answers Yes exactly when the claim is true, looked up by its text in `truth`.

    `truth` maps a claim's text (as stored, surrounding whitespace ignored) to True for a
    true claim and False for a false one; an attention check's text maps to its expected
    answer. The bot never reaches into the database itself: whoever knows the answers
    passes them in (the `run_bots` command builds the table from the study's claims). A
    text missing from the table, or no table at all, is answered like `RandomPolicy`.
    """

    name = "truthful"

    def __init__(self, truth: Mapping[str, bool] | None = None) -> None:
        self.truth = {_normal(text): bool(value) for text, value in (truth or {}).items()}
        self.looked_up = 0
        self.guessed = 0
        self._lock = threading.Lock()

    def answer(self, text: str, rng: random.Random) -> Choice:
        known = self.truth.get(_normal(text))
        with self._lock:
            if known is None:
                self.guessed += 1
            else:
                self.looked_up += 1
        if known is None:
            return RandomPolicy().answer(text, rng)
        return Choice(known, rng.randint(3, 5), rng.randint(1, 5))


class AnswerTablePolicy(Policy):
    """Answers every text from a table made beforehand: a persona's answers, for instance.

    `answers` maps a text (as stored, surrounding whitespace ignored) to its `Choice`. A
    text missing from the table is a `BotError`: a rater whose answers were all decided in
    advance must never guess.
    """

    def __init__(self, answers: Mapping[str, Choice], name: str = "table") -> None:
        self.answers = {_normal(text): choice for text, choice in answers.items()}
        self.name = name

    def answer(self, text: str, rng: random.Random) -> Choice:
        try:
            return self.answers[_normal(text)]
        except KeyError:
            raise BotError(f"policy {self.name}: no answer for the text {text[:80]!r}") from None


POLICIES = ("random", "truthful", "credulous")


def make_policy(name: str, truth: Mapping[str, bool] | None = None) -> Policy:
    """The policy called `name` (one of POLICIES); `truth` is TruthfulPolicy's table."""
    if name == "random":
        return RandomPolicy()
    if name == "credulous":
        return CredulousPolicy()
    if name == "truthful":
        return TruthfulPolicy(truth)
    raise ValueError(f"unknown policy '{name}'; accepted: {', '.join(POLICIES)}")


def _normal(text: str) -> str:
    return " ".join(text.split())


# --- What a bot records -----------------------------------------------------------------

@dataclass(frozen=True)
class Request:
    kind: str  # ENTER, CONSENT, SHOW, SUBMIT, ...
    method: str
    path: str
    status: int  # 0 when no response came (connection error)
    seconds: float
    at: float = 0.0  # when it was sent (time.time())


@dataclass(frozen=True)
class Submission:
    """An answer the server acknowledged with a redirect (it must be stored)."""

    position: int
    accurate: bool
    confidence: int
    familiarity: int
    text: str


@dataclass
class BotResult:
    external_id: str
    outcome: str = ERROR  # COMPLETED, TURNED_AWAY, LEFT or ERROR
    detail: str = ""  # the reason a bot was turned away, or the error
    token: str = ""  # the participant's token, from their URL
    completion_code: str = ""
    total_items: int = 0
    submissions: list[Submission] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    duplicates_sent: int = 0
    reloads: int = 0
    started: float = 0.0
    finished: float = 0.0

    def latencies(self, kind: str) -> list[float]:
        return [r.seconds for r in self.requests if r.kind == kind and r.status]

    def to_json(self) -> dict:
        return asdict(self)


# --- The bot --------------------------------------------------------------------------

@dataclass(frozen=True)
class Page:
    status: int
    path: str  # the path (and query) this response answered
    location: str  # for a redirect, the absolute path it points to
    body: str


_INPUT = re.compile(r"<input\b[^>]*>", re.IGNORECASE | re.DOTALL)
_ATTR = re.compile(r'([a-zA-Z_:-]+)\s*=\s*"([^"]*)"')
_CLAIM = re.compile(r'<blockquote[^>]*\bid="claim"[^>]*>(.*?)</blockquote>', re.DOTALL)
_PROGRESS = re.compile(r'id="progress"[^>]*>\s*Claim\s+(\d+)\s+of\s+(\d+)')
_FORM = re.compile(r'<form\b[^>]*\bid="judgment"[^>]*>', re.DOTALL)
_CODE = re.compile(r'<p[^>]*\bid="completion-code"[^>]*>(.*?)</p>', re.DOTALL)
_ALERT = re.compile(r'<p[^>]*\brole="alert"[^>]*>(.*?)</p>', re.DOTALL)
_START = re.compile(r'<a\b[^>]*\bid="start"[^>]*>', re.DOTALL)
_TAGS = re.compile(r"<[^>]+>")
_ITEM_PATH = re.compile(r"/item/(\d+)/$")


def _attrs(tag: str) -> dict[str, str]:
    return {name.lower(): html.unescape(value) for name, value in _ATTR.findall(tag)}


def _input_value(body: str, name: str) -> str | None:
    for tag in _INPUT.findall(body):
        attrs = _attrs(tag)
        if attrs.get("name") == name:
            return attrs.get("value", "")
    return None


def _text(fragment: str) -> str:
    return html.unescape(_TAGS.sub("", fragment)).strip()


def _alert(body: str) -> str:
    match = _ALERT.search(body)
    return _text(match.group(1)) if match else _text(body)[:200]


def _kind_of(path: str, method: str) -> str:
    route = urlsplit(path).path
    if _ITEM_PATH.search(route):
        return SUBMIT if method == "POST" else SHOW
    for suffix, kind in (("/consent/", CONSENT), ("/instructions/", INSTRUCTIONS), ("/done/", DONE)):
        if route.endswith(suffix):
            return kind
    return ENTER


class Bot:
    """One simulated participant; `run()` takes them through the study once.

    `double_submit` is the chance, per item, that the answer is sent twice at once with
    the same ticket (a double click: the server must store one judgment and redirect
    both); `reload` the chance, per item, that the page is reloaded before answering or
    the participant comes back through the study link mid-session (the server must send
    them to the same item). `think_time` is the pause, in seconds, before each answer
    (drawn uniformly from 0.5x to 1.5x of it); it is also sent as the response time.
    With `leave_after` = n the bot quits once it has consented and answered n items (0:
    right after consent), leaving its session open, and ends with the outcome LEFT.
    """

    def __init__(
        self,
        *,
        base_url: str,
        study_id: int,
        external_id: str,
        policy: Policy | None = None,
        rng: random.Random | None = None,
        double_submit: float = 0.0,
        reload: float = 0.0,
        think_time: float = 0.0,
        leave_after: int | None = None,
        timeout: float = 60.0,
        platform_study_id: str = "bot-study",
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base URL must be http(s)://host[:port], not '{base_url}'")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.prefix = parts.path.rstrip("/")
        self.study_id = study_id
        self.external_id = external_id
        self.policy = policy or RandomPolicy()
        self.rng = rng or random.Random()
        self.double_submit = double_submit
        self.reload = reload
        self.think_time = think_time
        self.leave_after = leave_after
        self.timeout = timeout
        self.platform_study_id = platform_study_id
        self.result = BotResult(external_id=external_id)
        self._connection: http.client.HTTPConnection | None = None

    # -- HTTP ---------------------------------------------------------------------------

    def _connect(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        return cls(self.host, self.port, timeout=self.timeout)

    def _send(self, connection, method: str, path: str, body: bytes | None) -> Page:
        headers = {"User-Agent": USER_AGENT, "Accept": "text/html"}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        text = response.read().decode("utf-8", "replace")
        location = response.getheader("Location") or ""
        if location:
            location = urlsplit(urljoin(path, location))
            location = location.path + (f"?{location.query}" if location.query else "")
        return Page(response.status, path, location, text)

    def request(self, method: str, path: str, data: Mapping[str, object] | None = None,
                kind: str | None = None, connection=None) -> Page:
        """One request on the bot's keep-alive connection (or `connection`), timed and kept.

        A kept-alive connection the server closed in between is reopened once and the
        request sent again, as browsers do; a POST sent twice that way is harmless because
        the ticket makes the submission idempotent.
        """
        kind = kind or _kind_of(path, method)
        body = urlencode(data).encode() if data is not None else None
        own = connection is None
        for attempt in (1, 2):
            if own and self._connection is None:
                self._connection = self._connect()
            conn = self._connection if own else connection
            sent, started = time.time(), time.perf_counter()
            try:
                page = self._send(conn, method, path, body)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                    http.client.CannotSendRequest, http.client.ResponseNotReady) as exc:
                conn.close()
                if own:
                    self._connection = None
                if attempt == 1 and own:
                    continue
                self.result.requests.append(Request(kind, method, path, 0,
                                                    time.perf_counter() - started, sent))
                raise BotError(f"{method} {path}: connection failed: {exc!r}") from None
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                if own:
                    self._connection = None
                self.result.requests.append(Request(kind, method, path, 0,
                                                    time.perf_counter() - started, sent))
                raise BotError(f"{method} {path}: {exc!r}") from None
            self.result.requests.append(Request(kind, method, path, page.status,
                                                time.perf_counter() - started, sent))
            if page.status >= 500:
                raise BotError(f"{method} {path}: HTTP {page.status}: {_alert(page.body)[:200]}")
            return page
        raise AssertionError("unreachable")

    def follow(self, page: Page, limit: int = 10) -> Page:
        """Follows redirects with GETs, as a browser does after a POST."""
        for _ in range(limit):
            if page.status not in (301, 302, 303, 307, 308):
                return page
            if not page.location:
                raise BotError(f"{page.path}: redirect without a Location")
            page = self.request("GET", page.location)
        raise BotError(f"{page.path}: more than {limit} redirects")

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    # -- The flow -----------------------------------------------------------------------

    def entry_path(self) -> str:
        query = urlencode({"PROLIFIC_PID": self.external_id, "STUDY_ID": self.platform_study_id,
                           "SESSION_ID": f"session-{self.external_id}"})
        return f"{self.prefix}/s/{self.study_id}/?{query}"

    def run(self) -> BotResult:
        result = self.result
        result.started = time.time()
        try:
            self._run()
            result.outcome = COMPLETED
        except TurnedAway as away:
            result.outcome, result.detail = TURNED_AWAY, str(away)
        except Left as left:
            result.outcome, result.detail = LEFT, str(left)
        except BotError as exc:
            result.outcome, result.detail = ERROR, str(exc)
        except Exception as exc:  # noqa: BLE001  (a bug in the bot, or a page it cannot read)
            result.outcome, result.detail = ERROR, f"{type(exc).__name__}: {exc}"
        finally:
            self.close()
            result.finished = time.time()
        return result

    def _run(self) -> None:
        page = self.request("GET", self.entry_path(), kind=ENTER)
        if page.status == 403:
            raise TurnedAway(_alert(page.body))
        if page.status in (400, 429):
            # Bots' ids are not Prolific's, and they all come from one address.
            raise BotError(f"GET {page.path}: HTTP {page.status}: {_alert(page.body)[:200]} "
                           f"(for bots, run the server with FRAMELAB_CHECK_PLATFORM_IDS=false and "
                           f"FRAMELAB_PARTICIPANT_ENTRIES_PER_ADDRESS=0: docs/security.md)")
        if page.status != 302:
            raise BotError(f"GET {page.path}: expected a redirect into the study, got "
                           f"HTTP {page.status}: {_alert(page.body)[:200]}")
        match = re.search(r"/p/([^/]+)/", page.location)
        self.result.token = match.group(1) if match else ""
        page = self.follow(page)
        consented = False
        expected_position = None  # the item the server should show next, once known
        for _ in range(1000):
            route = urlsplit(page.path).path
            if page.status == 403 and not consented:
                raise TurnedAway(_alert(page.body))
            if page.status != 200:
                raise BotError(f"GET {page.path}: HTTP {page.status}: {_alert(page.body)[:200]}")
            if route.endswith("/consent/"):
                if consented:
                    raise BotError(f"{page.path}: asked for consent again after giving it")
                page = self.request("POST", page.path, {"consent": "yes"})
                if page.status == 403:
                    raise TurnedAway(_alert(page.body))
                if page.status != 302:
                    raise BotError(f"POST {page.path}: HTTP {page.status}: {_alert(page.body)[:200]}")
                consented = True
                page = self.follow(page)
            elif route.endswith("/instructions/"):
                consented = True
                if self.leave_after == 0:
                    raise Left("left after consenting")
                start = _START.search(page.body)
                if not start or not _attrs(start.group(0)).get("href"):
                    raise BotError(f"{page.path}: no Start link")
                page = self.follow(self.request("GET", _attrs(start.group(0))["href"]))
            elif _ITEM_PATH.search(route):
                consented = True
                if self.leave_after is not None and len(self.result.submissions) >= self.leave_after:
                    raise Left(f"left after {len(self.result.submissions)} answers")
                position = int(_ITEM_PATH.search(route).group(1))
                if expected_position is not None and position != expected_position:
                    raise BotError(f"{page.path}: shown item {position}, expected item "
                                   f"{expected_position} (an answer lost or skipped?)")
                page = self._answer(page, position)
                expected_position = position + 1
            elif route.endswith("/done/"):
                match = _CODE.search(page.body)
                if not match:
                    raise BotError(f"{page.path}: no completion code on the page")
                self.result.completion_code = _text(match.group(1))
                if self.result.total_items and len(self.result.submissions) != self.result.total_items:
                    raise BotError(f"finished after {len(self.result.submissions)} of "
                                   f"{self.result.total_items} answers")
                return
            else:
                raise BotError(f"{page.path}: unexpected page")
        raise BotError("the study did not end after 1000 pages")

    def _read_item(self, page: Page, position: int) -> tuple[str, str, str]:
        claim = _CLAIM.search(page.body)
        progress = _PROGRESS.search(page.body)
        ticket = _input_value(page.body, "ticket")
        form = _FORM.search(page.body)
        if not (claim and progress and ticket and form):
            raise BotError(f"{page.path}: the item page lacks its claim, progress, form or ticket")
        shown, total = int(progress.group(1)), int(progress.group(2))
        if shown != position:
            raise BotError(f"{page.path}: page says claim {shown}, URL says {position}")
        self.result.total_items = total
        action = _attrs(form.group(0)).get("action") or page.path
        return _text(claim.group(1)), ticket, action

    def _answer(self, page: Page, position: int) -> Page:
        text, ticket, action = self._read_item(page, position)
        if self.reload and self.rng.random() < self.reload:
            page = self._reload(page, position)
            text, ticket, action = self._read_item(page, position)
        choice = self.policy.answer(text, self.rng)
        pause = self.think_time * (0.5 + self.rng.random()) if self.think_time else 0.0
        if pause:
            time.sleep(pause)
        form = {"accurate": "yes" if choice.accurate else "no", "confidence": choice.confidence,
                "familiarity": choice.familiarity, "ticket": ticket,
                "response_time_ms": int(pause * 1000) or self.rng.randint(800, 9000)}
        if self.double_submit and self.rng.random() < self.double_submit:
            response = self._submit_twice(action, form)
        else:
            response = self.request("POST", action, form, kind=SUBMIT)
        if response.status != 302:
            raise BotError(f"POST {action}: HTTP {response.status}: {_alert(response.body)[:200]}")
        self.result.submissions.append(Submission(position, choice.accurate, choice.confidence,
                                                  choice.familiarity, text))
        return self.follow(response)

    def _reload(self, page: Page, position: int) -> Page:
        """Reloads the item, or comes back through the study link; either way the server
        must show the same item again (with a fresh ticket)."""
        self.result.reloads += 1
        if self.rng.random() < 0.5:
            again = self.request("GET", page.path, kind=SHOW)
        else:
            again = self.follow(self.request("GET", self.entry_path(), kind=ENTER))
        if again.status != 200 or urlsplit(again.path).path != urlsplit(page.path).path:
            raise BotError(f"reloading {page.path} led to {again.path} (HTTP {again.status}), "
                           f"not to item {position}")
        return again

    def _submit_twice(self, action: str, form: Mapping[str, object]) -> Page:
        """The same answer sent twice at once, on two connections, like a double click."""
        self.result.duplicates_sent += 1
        second: dict[str, object] = {}

        def duplicate():
            connection = self._connect()
            try:
                second["page"] = self.request("POST", action, form, kind=DUPLICATE,
                                              connection=connection)
            except BaseException as exc:  # noqa: BLE001  (raised below, in the bot's thread)
                second["error"] = exc
            finally:
                connection.close()

        thread = threading.Thread(target=duplicate, daemon=True)
        thread.start()
        try:
            first = self.request("POST", action, form, kind=SUBMIT)
        finally:
            thread.join()
        if "error" in second:
            raise second["error"]
        other = second["page"]
        if other.status != 302:
            raise BotError(f"duplicate POST {action}: HTTP {other.status}: {_alert(other.body)[:200]}")
        return first


# --- Many bots at once ------------------------------------------------------------------

def percentile(values: list[float], fraction: float) -> float | None:
    """The nearest-rank percentile (0 < fraction <= 1); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-fraction * len(ordered) // 1))))
    return ordered[rank - 1]


@dataclass
class BotsReport:
    results: list[BotResult]
    seconds: float  # wall time of the whole run

    def by_outcome(self, outcome: str) -> list[BotResult]:
        return [r for r in self.results if r.outcome == outcome]

    @property
    def completed(self) -> int:
        return len(self.by_outcome(COMPLETED))

    @property
    def turned_away(self) -> int:
        return len(self.by_outcome(TURNED_AWAY))

    @property
    def left(self) -> int:
        return len(self.by_outcome(LEFT))

    @property
    def errors(self) -> list[BotResult]:
        return self.by_outcome(ERROR)

    @property
    def judgments(self) -> int:
        return sum(len(r.submissions) for r in self.results)

    @property
    def judgments_per_second(self) -> float:
        return self.judgments / self.seconds if self.seconds > 0 else 0.0

    def latencies(self, kind: str) -> list[float]:
        return [s for r in self.results for s in r.latencies(kind)]

    def latency_ms(self, kind: str, fraction: float) -> float | None:
        value = percentile(self.latencies(kind), fraction)
        return None if value is None else value * 1000

    def summary(self, first_errors: int = 5) -> str:
        def ms(kind, fraction):
            value = self.latency_ms(kind, fraction)
            return "n/a" if value is None else f"{value:.1f} ms"

        lines = [
            f"bots: {len(self.results)} in {self.seconds:.1f} s",
            f"completed: {self.completed}",
            f"turned away: {self.turned_away}",
            *([f"left on purpose: {self.left}"] if self.left else []),
            f"errors: {len(self.errors)}",
        ]
        for result in self.errors[:first_errors]:
            lines.append(f"  {result.external_id}: {result.detail}")
        if len(self.errors) > first_errors:
            lines.append(f"  ... and {len(self.errors) - first_errors} more")
        reasons = sorted({r.detail for r in self.by_outcome(TURNED_AWAY)})
        for reason in reasons[:3]:
            lines.append(f"  turned away: {reason}")
        lines += [
            f"judgments submitted: {self.judgments} ({self.judgments_per_second:.1f}/s)",
            (f"show item: p50 {ms(SHOW, 0.5)}, p99 {ms(SHOW, 0.99)} "
             f"({len(self.latencies(SHOW))} requests)"),
            (f"submit:    p50 {ms(SUBMIT, 0.5)}, p99 {ms(SUBMIT, 0.99)} "
             f"({len(self.latencies(SUBMIT))} requests)"),
        ]
        duplicates = sum(r.duplicates_sent for r in self.results)
        reloads = sum(r.reloads for r in self.results)
        if duplicates or reloads:
            lines.append(f"double submits: {duplicates}, reloads: {reloads}")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"seconds": self.seconds, "completed": self.completed,
                "turned_away": self.turned_away, "left": self.left, "errors": len(self.errors),
                "judgments": self.judgments, "judgments_per_second": self.judgments_per_second,
                "latency_ms": {kind: {"p50": self.latency_ms(kind, 0.5),
                                      "p99": self.latency_ms(kind, 0.99)}
                               for kind in (SHOW, SUBMIT)},
                "bots": [r.to_json() for r in self.results]}

    def write_json(self, path) -> None:
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(self.to_json(), handle)


def run_bots(
    *,
    base_url: str,
    study_id: int,
    participants: int,
    concurrency: int = 10,
    policy: Policy | None = None,
    seed: int | None = None,
    id_prefix: str | None = None,
    double_submit: float = 0.0,
    reload: float = 0.0,
    think_time: float = 0.0,
    leave_after: int | None = None,
    timeout: float = 60.0,
    on_result: Callable[[BotResult], None] | None = None,
) -> BotsReport:
    """Runs `participants` bots through the study, at most `concurrency` at a time.

    Bot i enters as `{id_prefix}{i:05d}` (a fresh random prefix when none is given, so
    that a second run makes new participants) with its own RNG seeded from `seed` and i,
    so a run with a seed answers the same way again.
    """
    if participants < 0 or concurrency < 1:
        raise ValueError("participants must be >= 0 and concurrency >= 1")
    policy = policy or RandomPolicy()
    if id_prefix is None:
        id_prefix = f"bot-{random.Random(seed).getrandbits(32) if seed is not None else random.getrandbits(32):08x}-"
    lock = threading.Lock()

    def one(index: int) -> BotResult:
        rng = random.Random(f"{seed}:{index}") if seed is not None else random.Random()
        bot = Bot(base_url=base_url, study_id=study_id, external_id=f"{id_prefix}{index:05d}",
                  policy=policy, rng=rng, double_submit=double_submit, reload=reload,
                  think_time=think_time, leave_after=leave_after, timeout=timeout)
        result = bot.run()
        if on_result is not None:
            with lock:
                on_result(result)
        return result

    started = time.perf_counter()
    if participants:
        with ThreadPoolExecutor(max_workers=min(concurrency, participants),
                                thread_name_prefix="bot") as pool:
            results = list(pool.map(one, range(participants)))
    else:
        results = []
    return BotsReport(results=results, seconds=time.perf_counter() - started)


def wait_until_serving(base_url: str, path: str = "/healthz", timeout: float = 30.0,
                       alive: Callable[[], bool] | None = None) -> None:
    """Waits until `base_url` answers `path` with 200; `alive` says if the server still runs."""
    parts = urlsplit(base_url)
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise BotError(f"the server at {base_url} exited while starting")
        connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=5)
        try:
            connection.request("GET", parts.path.rstrip("/") + path)
            response = connection.getresponse()
            response.read()
            if response.status == 200:
                return
            last = f"HTTP {response.status}"
        except (OSError, http.client.HTTPException) as exc:
            last = repr(exc)
        finally:
            connection.close()
        time.sleep(0.1)
    raise BotError(f"{base_url}{path} did not answer within {timeout:.0f} s ({last})")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
