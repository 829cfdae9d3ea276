"""Reading Prolific's wide annotation export (method.md section 2.4) into checked item answers.

Prolific writes one row per (data point, question) with the columns `DataPoint_ID,
Task_Group_ID, Task_Type, Question, Claim` and, for each annotator slot i,
`Annotator{i}_ID, Annotator{i}_Response, Annotator{i}_Timestamp`. A slot is one column
group, not one person: annotator 1 of one data point may be annotator 3 of the next, so
answers are keyed on the annotator's id, never on the slot.

`read_prolific_results` turns the file into one `ItemAnswers` per (data point, annotator)
holding the three answers of the Claim Assessment task, and raises `ProlificFileError` at
the first thing that cannot be imported faithfully, naming the file, line, field and
value: a missing column, an unexpected question, an invalid response or timestamp, an
exact duplicate row, a second row for the same question of a data point, a data point
whose rows disagree on its text or task group, or an annotator who answered only some of an
item's three questions. An annotator who answered in two task groups (a participant who took
two batches, which real exports hold) is read, not refused: `annotator_task_groups` lists
their groups, and the analysis's `design-violations` exclusion rule (on by default) leaves
out their judgments of any base claim they saw in two framings. Matching texts to claims needs the database and lives in the import service
(`annotation.dataio.services.prolific_results_import`). No Django here.
"""
from __future__ import annotations

import csv
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from annotation.claims.files import ClaimFileError

REQUIRED_COLUMNS = ("DataPoint_ID", "Task_Group_ID", "Question", "Claim")
OPTIONAL_COLUMNS = ("Task_Type",)
QUESTIONS = ("accurate", "confidence", "familiarity")
# How a question is recognised: each of FrameRef's three questions holds exactly one of
# these words ("Is this accurate?", "How confident are you in your answer?", "How familiar
# are you with this topic?"), so reworded questions still match and anything else is
# refused rather than guessed at.
QUESTION_WORDS = {"accurate": ("accurate",), "confidence": ("confident", "confidence"),
                  "familiarity": ("familiar",)}
ACCEPTED_QUESTIONS = ('"Is this accurate?", "How confident are you in your answer?", '
                      '"How familiar are you with this topic?" (or any question with exactly '
                      'one of the words accurate, confident, familiar)')

_ATTRIBUTE = {"accurate": "accept", "confidence": "confidence", "familiarity": "familiarity"}
_SLOT_COLUMN = re.compile(r"^Annotator(\d+)_(ID|Response|Timestamp)$")
_YES_NO = re.compile(r"^(yes|no)\b\s*(\(.*\))?$", re.IGNORECASE)
_SCALE = re.compile(r"^([1-5])(?:\.0)?\s*(\(.*\))?$")


class ProlificFileError(ClaimFileError):
    """A row of a Prolific export that cannot be imported, with where and why."""


@dataclass(frozen=True)
class DataPoint:
    id: str
    task_group: str
    text: str
    task_type: str
    line: int  # the first line that names it


@dataclass
class ItemAnswers:
    """One annotator's three answers to one data point."""

    data_point: str
    annotator: str
    accept: bool | None = None
    confidence: int | None = None
    familiarity: int | None = None
    timestamps: dict[str, datetime] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)

    @property
    def first_answered(self) -> datetime:
        return min(self.timestamps.values())

    @property
    def last_answered(self) -> datetime:
        return max(self.timestamps.values())


@dataclass
class ProlificResults:
    path: str
    rows: int
    data_points: dict[str, DataPoint]  # in the natural order of their ids
    task_groups: list[str]  # in the natural order of their ids
    answers: list[ItemAnswers]
    annotator_groups: dict[str, str]  # annotator id -> their main task group (most items answered)
    # annotator id -> every task group they answered in (one, unless they took two batches)
    annotator_task_groups: dict[str, list[str]] = field(default_factory=dict)

    def in_several_groups(self) -> list[str]:
        """Annotators who answered in more than one task group, in id order."""
        return sorted((a for a, groups in self.annotator_task_groups.items() if len(groups) > 1),
                      key=natural_key)

    def data_points_of(self, task_group: str) -> list[DataPoint]:
        return [dp for dp in self.data_points.values() if dp.task_group == task_group]


def natural_key(value: str) -> tuple:
    """Orders ids as a person would: 2 before 10, numbers before other names."""
    return (0, int(value), "") if value.isdigit() else (1, 0, value)


def question_kind(question: str) -> str | None:
    words = question.lower()
    kinds = [kind for kind, keys in QUESTION_WORDS.items() if any(key in words for key in keys)]
    return kinds[0] if len(kinds) == 1 else None


def parse_timestamp(value: str) -> datetime | None:
    """An ISO 8601 time (naive times are taken as UTC, as Prolific writes them) or a Unix
    time in seconds or milliseconds; None if it is neither."""
    value = value.strip()
    if value.isdigit() and len(value) in (10, 13):
        seconds = int(value) / (1000 if len(value) == 13 else 1)
        return datetime.fromtimestamp(seconds, tz=timezone.utc)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace(" UTC", ""))
    except ValueError:
        return None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def parse_response(kind: str, value: str) -> bool | int | None:
    value = value.strip()
    if kind == "accurate":
        match = _YES_NO.match(value)
        return None if match is None else match.group(1).lower() == "yes"
    match = _SCALE.match(value)
    return None if match is None else int(match.group(1))


def _slots(path: str, header: list[str]) -> list[tuple[int, int, int, int]]:
    """(slot number, column of its id, response, timestamp), checked complete."""
    found: dict[int, dict[str, int]] = defaultdict(dict)
    for column, name in enumerate(header):
        match = _SLOT_COLUMN.match(name)
        if match:
            found[int(match.group(1))][match.group(2)] = column
    if not found:
        raise ProlificFileError(path=path, line=1, field="header", value=",".join(header)[:200],
                                problem="no annotator columns",
                                accepted="Annotator1_ID, Annotator1_Response, Annotator1_Timestamp, ...")
    slots = []
    for number in sorted(found):
        parts = found[number]
        missing = [part for part in ("ID", "Response", "Timestamp") if part not in parts]
        if missing:
            raise ProlificFileError(
                path=path, line=1, field="header",
                problem=f"annotator {number} has no {', '.join(f'Annotator{number}_{m}' for m in missing)} column",
                accepted=f"Annotator{number}_ID, Annotator{number}_Response, Annotator{number}_Timestamp")
        slots.append((number, parts["ID"], parts["Response"], parts["Timestamp"]))
    return slots


def read_prolific_results(path: str | Path) -> ProlificResults:
    """Reads and checks a whole export; raises `ProlificFileError` at the first problem."""
    name = str(path)
    try:
        return _read(path, name)
    except UnicodeDecodeError as exc:
        raise ProlificFileError(path=name, line=None, problem=f"not UTF-8 text ({exc.reason} at byte {exc.start})",
                                accepted="a CSV file in UTF-8, as Prolific writes it") from None
    except csv.Error as exc:
        raise ProlificFileError(path=name, line=None, problem=f"not a readable CSV file ({exc})") from None


def _read(path: str | Path, name: str) -> ProlificResults:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise ProlificFileError(path=name, line=None, problem="the file is empty")
        header = [column.strip() for column in header]
        columns = {column: index for index, column in enumerate(header)}
        missing = [column for column in REQUIRED_COLUMNS if column not in columns]
        if missing:
            raise ProlificFileError(
                path=name, line=1, field="header", value=",".join(header)[:200],
                problem=f"missing column(s) {', '.join(missing)}",
                accepted="DataPoint_ID, Task_Group_ID, Task_Type, Question, Claim, then "
                         "Annotator{i}_ID, Annotator{i}_Response, Annotator{i}_Timestamp")
        slots = _slots(name, header)
        width = len(header)
        seen_rows: dict[tuple, int] = {}
        seen_questions: dict[tuple[str, str], int] = {}
        data_points: dict[str, DataPoint] = {}
        answers: dict[tuple[str, str], ItemAnswers] = {}
        rows = 0
        for values in reader:
            line = reader.line_num
            if not any(value.strip() for value in values):
                continue
            rows += 1
            values = [value.strip() for value in values] + [""] * (width - len(values))
            if len(values) > width and any(values[width:]):
                raise ProlificFileError(path=name, line=line, value=values[width],
                                        problem=f"the row has {len(values)} cells, the header {width}")
            key = tuple(values[:width])
            if key in seen_rows:
                raise ProlificFileError(path=name, line=line, problem=f"exact duplicate of line {seen_rows[key]}")
            seen_rows[key] = line
            cell = {column: values[index] for column, index in columns.items()}
            for column in REQUIRED_COLUMNS:
                if not cell[column]:
                    raise ProlificFileError(path=name, line=line, field=column, value="",
                                            problem="empty")
            point_id, group, question = cell["DataPoint_ID"], cell["Task_Group_ID"], cell["Question"]
            kind = question_kind(question)
            if kind is None:
                raise ProlificFileError(path=name, line=line, field="Question", value=question,
                                        problem="unexpected question", accepted=ACCEPTED_QUESTIONS)
            earlier = seen_questions.get((point_id, kind))
            if earlier is not None:
                raise ProlificFileError(
                    path=name, line=line, field="Question", value=question,
                    problem=f"data point {point_id} already has a row for this question at line {earlier}")
            seen_questions[(point_id, kind)] = line
            point = data_points.get(point_id)
            if point is None:
                data_points[point_id] = DataPoint(point_id, group, cell["Claim"],
                                                  cell.get("Task_Type", ""), line)
            elif point.text != cell["Claim"]:
                raise ProlificFileError(path=name, line=line, field="Claim", value=cell["Claim"],
                                        problem=f"data point {point_id} has another text at line {point.line}")
            elif point.task_group != group:
                raise ProlificFileError(
                    path=name, line=line, field="Task_Group_ID", value=group,
                    problem=f"data point {point_id} is in task group {point.task_group} at line {point.line}")
            in_row: dict[str, int] = {}
            for number, id_column, response_column, time_column in slots:
                annotator = values[id_column]
                response, stamp = values[response_column], values[time_column]
                if not annotator:
                    if response:
                        raise ProlificFileError(path=name, line=line, field=f"Annotator{number}_Response",
                                                value=response, problem=f"a response without an annotator "
                                                f"(Annotator{number}_ID is empty)")
                    continue
                if annotator in in_row:
                    raise ProlificFileError(path=name, line=line, field=f"Annotator{number}_ID", value=annotator,
                                            problem=f"the same annotator as Annotator{in_row[annotator]}_ID")
                in_row[annotator] = number
                answer = answers.get((point_id, annotator))
                if answer is None:
                    answer = answers[(point_id, annotator)] = ItemAnswers(point_id, annotator)
                if not response:
                    continue  # an unanswered question: reported below with the whole item
                parsed = parse_response(kind, response)
                if parsed is None:
                    raise ProlificFileError(
                        path=name, line=line, field=f"Annotator{number}_Response", value=response,
                        problem=f"not an answer to '{question}'",
                        accepted="Yes or No" if kind == "accurate" else "1 to 5, optionally with a label, e.g. '5 (Very familiar)'")
                moment = parse_timestamp(stamp)
                if moment is None:
                    raise ProlificFileError(path=name, line=line, field=f"Annotator{number}_Timestamp",
                                            value=stamp, problem="not a time",
                                            accepted="ISO 8601, e.g. 2024-05-01T12:34:56Z, or Unix seconds")
                setattr(answer, _ATTRIBUTE[kind], parsed)
                answer.timestamps[kind] = moment
                answer.lines[kind] = line
    if not data_points:
        raise ProlificFileError(path=name, line=None, problem="the file holds no rows")
    answered_in: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for answer in answers.values():
        point = data_points[answer.data_point]
        missing = [kind for kind in QUESTIONS if kind not in answer.timestamps]
        if missing:
            done = [kind for kind in QUESTIONS if kind in answer.timestamps]
            line = min(answer.lines.values()) if answer.lines else point.line
            raise ProlificFileError(
                path=name, line=line, field="Annotator_ID", value=answer.annotator,
                problem=(f"answered only {', '.join(done) or 'none'} of the three questions of data point "
                         f"{point.id} (no {', '.join(missing)}); an item counts only with all three answers"))
        answered_in[answer.annotator][point.task_group] += 1
    ordered = dict(sorted(data_points.items(), key=lambda item: natural_key(item[0])))
    return ProlificResults(
        path=name,
        rows=rows,
        data_points=ordered,
        task_groups=sorted({dp.task_group for dp in ordered.values()}, key=natural_key),
        answers=sorted(answers.values(), key=lambda a: (natural_key(a.data_point), a.annotator)),
        annotator_groups={annotator: _main_group(groups) for annotator, groups in answered_in.items()},
        annotator_task_groups={annotator: sorted(groups, key=natural_key)
                               for annotator, groups in answered_in.items()},
    )


def _main_group(answered: dict[str, int]) -> str:
    """The task group an annotator answered most items of (the first, in id order, on a tie)."""
    return min(answered, key=lambda group: (-answered[group], natural_key(group)))
