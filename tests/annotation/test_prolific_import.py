"""Importing Prolific's wide annotation export: a study that analyses and exports like one run
here, and one test per kind of bad input, each naming the line and leaving nothing behind."""
import csv
import io
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest
from django.core.management import CommandError, call_command

from annotation.claims.demo import DEMO_FILE
from annotation.dataio.judgment_table import judgment_table
from annotation.dataio.prolific_import import (
    ProlificFileError,
    parse_response,
    parse_timestamp,
    question_kind,
    read_prolific_results,
)
from annotation.models import Batch, BatchItem, Judgment, Participant, Study

QUESTIONS = {
    "accurate": "Is this accurate?",
    "confidence": "How confident are you in your answer?",
    "familiarity": "How familiar are you with this topic?",
}
CONFIDENCE_LABELS = {1: "Not at all confident", 5: "Very confident"}
FAMILIARITY_LABELS = {1: "Not at all familiar", 5: "Very familiar"}
FRAMINGS = ("original", "authoritative", "consensus", "emotional", "prestige", "sensationalist")


def demo_texts() -> dict[tuple[str, str], str]:
    texts = {}
    for line in DEMO_FILE.read_bytes().splitlines():
        record = orjson.loads(line)
        base, framing = record["claim_id"].split(":")
        texts[(base, framing)] = record["restated_claim"]
    return texts


def prolific_export(*, groups=6, base_claims=12, raters=(3, 2, 3, 2, 3, 3), seed=5):
    """A wide export as Prolific writes it for a FrameRef-style study of the demo dataset.

    Task group g holds one framing of each of `base_claims` base claims (framing (j + g) mod
    6), so no group holds two framings of one claim and six groups cover every framing.
    Annotator slots are shuffled per data point, as in a real export; answers come with
    labels on the scale ends ("5 (Very confident)"), timestamps advance per annotator.
    Returns (header, rows, truth) where truth maps (annotator, text) to the answers.
    """
    rng = random.Random(seed)
    texts = demo_texts()
    bases = sorted({base for base, _ in texts})[:base_claims]
    slots = max(raters)
    header = ["DataPoint_ID", "Task_Group_ID", "Task_Type", "Question", "Claim"]
    for i in range(1, slots + 1):
        header += [f"Annotator{i}_ID", f"Annotator{i}_Response", f"Annotator{i}_Timestamp"]
    rows, truth = [], {}
    point_id = 0
    start = datetime(2025, 3, 4, 9, 0, tzinfo=timezone.utc)
    for group in range(groups):
        annotators = ["%024x" % rng.getrandbits(96) for _ in range(raters[group])]
        clock = {a: start + timedelta(minutes=rng.randint(0, 300)) for a in annotators}
        for j, base in enumerate(bases):
            point_id += 1
            text = texts[(base, FRAMINGS[(j + group) % 6])]
            answers = {}
            for annotator in annotators:
                accept = rng.random() < 0.55
                confidence, familiarity = rng.randint(1, 5), rng.randint(1, 5)
                answers[annotator] = {"accurate": "Yes" if accept else "No",
                                      "confidence": _labelled(confidence, CONFIDENCE_LABELS),
                                      "familiarity": _labelled(familiarity, FAMILIARITY_LABELS)}
                truth[(annotator, text)] = (accept, confidence, familiarity)
            order = annotators[:]
            rng.shuffle(order)
            for kind, question in QUESTIONS.items():
                row = [str(point_id), str(group + 1), "Claim Assessment", question, text]
                for annotator in order:
                    clock[annotator] += timedelta(seconds=rng.randint(3, 12))
                    row += [annotator, answers[annotator][kind],
                            clock[annotator].strftime("%Y-%m-%d %H:%M:%S")]
                row += [""] * (len(header) - len(row))
                rows.append(row)
    return header, rows, truth


def _labelled(value, labels):
    return f"{value} ({labels[value]})" if value in labels else str(value)


def write_export(path: Path, header, rows) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def demo(db):
    call_command("load_demo", no_user=True)


@pytest.fixture
def export(tmp_path):
    header, rows, truth = prolific_export()
    return tmp_path / "prolific-export.csv", header, rows, truth


def database_counts():
    return tuple(model.objects.count() for model in (Study, Batch, BatchItem, Participant, Judgment))


def import_results(path, study="From Prolific", *extra):
    stdout = io.StringIO()
    call_command("import_prolific_results", str(path), "--dataset", "FrameLab demo", "--study", study,
                 *extra, stdout=stdout)
    return stdout.getvalue()


# --- The pure parts ---------------------------------------------------------------------

def test_responses_questions_and_times():
    assert parse_response("accurate", "Yes") is True and parse_response("accurate", "no") is False
    assert parse_response("accurate", "Maybe") is None
    assert parse_response("confidence", "4") == 4
    assert parse_response("familiarity", "5 (Very familiar)") == 5
    assert parse_response("familiarity", "6") is None and parse_response("confidence", "") is None
    assert question_kind("Is this accurate?") == "accurate"
    assert question_kind("How confident are you in your answer?") == "confidence"
    assert question_kind("How familiar are you with this topic?") == "familiarity"
    assert question_kind("Would you share this?") is None
    assert question_kind("How confident and familiar are you?") is None
    assert parse_timestamp("2025-03-04 09:00:05") == datetime(2025, 3, 4, 9, 0, 5, tzinfo=timezone.utc)
    assert parse_timestamp("2025-03-04T10:00:05+01:00") == datetime(2025, 3, 4, 9, 0, 5, tzinfo=timezone.utc)
    assert parse_timestamp("1741078805") == datetime(2025, 3, 4, 9, 0, 5, tzinfo=timezone.utc)
    assert parse_timestamp("yesterday") is None


def test_the_reader_keys_answers_on_annotators_not_slots(export):
    path, header, rows, truth = export
    results = read_prolific_results(write_export(path, header, rows))
    assert results.rows == 6 * 12 * 3 and len(results.data_points) == 72
    assert results.task_groups == ["1", "2", "3", "4", "5", "6"]
    assert len(results.answers) == len(truth) == 12 * (3 + 2 + 3 + 2 + 3 + 3)
    for answer in results.answers:
        text = results.data_points[answer.data_point].text
        assert (answer.accept, answer.confidence, answer.familiarity) == truth[(answer.annotator, text)]


# --- The import -------------------------------------------------------------------------

def test_an_import_reproduces_the_answers(demo, export):
    path, header, rows, truth = export
    excluded = rows[0][5]  # the first annotator of the first data point
    output = import_results(write_export(path, header, rows), "From Prolific", "--exclude", excluded)
    assert "192 judgments" in output and "16 participants (15 completed, 1 excluded" in output
    study = Study.objects.get(name="From Prolific")
    assert study.status == "closed" and study.base_claim_count == 12
    assert study.framings == list(FRAMINGS) and study.batch_size == 12 and study.raters_per_batch == 3
    batches = list(study.batches.order_by("index"))
    assert [b.quota for b in batches] == [3, 2, 3, 2, 3, 3]
    assert [b.completed_count for b in batches] == [2, 2, 3, 2, 3, 3]
    assert all(b.items.count() == 12 for b in batches)
    returned = Participant.objects.get(study=study, external_id=excluded)
    assert returned.status == "returned" and returned.source == "prolific"

    table = judgment_table(study=study)
    assert len(table) == len(truth)
    for row in table.itertuples():
        accept, confidence, familiarity = truth[(row.Annotator_ID, row.text)]
        assert row.accurate_response == ("SUPPORTS" if accept else "REFUTES")
        assert (row.confidence_response, row.familiarity_response) == (confidence, familiarity)
        base, framing = row.full_claim_id.split(":")
        assert demo_texts()[(base, framing)] == row.text and row.framing_type == framing
    # A data point is one item of one task group, answered by that group's raters.
    assert (table.groupby("DataPoint_ID")["Task_Group_ID"].nunique() == 1).all()
    assert sorted(table["Task_Group_ID"].unique()) == [1, 2, 3, 4, 5, 6]
    assert set(table.loc[table["Annotator_ID"] == excluded, "excluded"]) == {True}
    assert not table.loc[table["Annotator_ID"] != excluded, "excluded"].any()
    # Times come from the export: each judgment answered at its last answer, shown no later.
    assert (table["shown_at"] <= table["answered_at"]).all()
    assert table["answered_at"].min() >= datetime(2025, 3, 4, 9, 0, tzinfo=timezone.utc)
    per_rater = table.sort_values(["Annotator_ID", "position"]).groupby("Annotator_ID")
    assert all(group["answered_at"].is_monotonic_increasing for _, group in per_rater)
    assert table["response_time_ms"].isna().all()


def test_a_partial_annotator_is_imported_as_timed_out(demo, export):
    path, header, rows, truth = export
    # Remove annotator X's answers to the last data point of task group 2 (all three rows).
    group_rows = [r for r in rows if r[1] == "2"]
    last_point = group_rows[-1][0]
    quitter = group_rows[-1][5]
    for row in rows:
        if row[0] == last_point:
            index = row.index(quitter)
            row[index:index + 3] = ["", "", ""]
    import_results(write_export(path, header, rows))
    participant = Participant.objects.get(external_id=quitter)
    assert participant.status == "timed_out" and "answered 11 of the 12 items" in participant.status_note
    assert participant.judgments.count() == 11


# --- Bad input: one test per kind, each naming the line and leaving nothing behind --------

def rejects(path, header, rows, *needles, extra=()):
    write_export(path, header, rows)
    before = database_counts()
    with pytest.raises(CommandError) as caught:
        import_results(path, "From Prolific", *extra)
    message = str(caught.value)
    for needle in needles:
        assert needle in message, message
    assert "Nothing was imported" in message
    assert database_counts() == before
    assert not Study.objects.filter(name="From Prolific").exists()
    return message


def test_no_matching_claim(demo, export):
    path, header, rows, _ = export
    for row in rows[3:6]:  # all three rows of data point 2
        row[4] = "The Moon is made of cheese."
    rejects(path, header, rows, f"{path.name}:5: field 'Claim': value 'The Moon is made of cheese.'",
            "no framed claim of dataset 'FrameLab demo' has this text")


def test_several_matching_claims(demo, export):
    from annotation.models import FramedClaim

    path, header, rows, _ = export
    text = rows[0][4]
    twin = FramedClaim.objects.exclude(text=text).filter(base_claim__dataset__name="FrameLab demo").last()
    FramedClaim.objects.filter(pk=twin.pk).update(text=text)
    rejects(path, header, rows, f"{path.name}:2: field 'Claim'", "2 framed claims of dataset",
            twin.claim_id, "cannot tell which was shown")


def test_unexpected_question(demo, export):
    path, header, rows, _ = export
    rows[7][3] = "Would you share this on social media?"
    rejects(path, header, rows,
            f"{path.name}:9: field 'Question': value 'Would you share this on social media?': unexpected question",
            "accepted: \"Is this accurate?\"")


@pytest.mark.parametrize("column, value, accepted", [
    (6, "Perhaps", "accepted: Yes or No"),
    (6, "7", "accepted: 1 to 5"),
])
def test_invalid_response(demo, export, column, value, accepted):
    path, header, rows, _ = export
    row = 9 if value == "Perhaps" else 10  # an accuracy row, a confidence row
    rows[row][column] = value
    rejects(path, header, rows, f"{path.name}:{row + 2}: field 'Annotator1_Response': value '{value}'",
            "not an answer to", accepted)


def test_invalid_timestamp(demo, export):
    path, header, rows, _ = export
    rows[4][7] = "last Tuesday"
    rejects(path, header, rows, f"{path.name}:6: field 'Annotator1_Timestamp': value 'last Tuesday': not a time")


def test_exact_duplicate_row(demo, export):
    path, header, rows, _ = export
    rows.insert(20, list(rows[12]))
    rejects(path, header, rows, f"{path.name}:22: exact duplicate of line 14")


def test_a_second_row_for_one_question(demo, export):
    path, header, rows, _ = export
    copy = list(rows[12])
    copy[6] = "No" if copy[6] == "Yes" else "Yes"
    rows.insert(14, copy)
    rejects(path, header, rows, f"{path.name}:16: field 'Question'",
            f"data point {rows[12][0]} already has a row for this question at line 14")


def test_an_annotator_who_answered_only_some_questions(demo, export):
    path, header, rows, _ = export
    annotator = rows[2][5]  # the familiarity row of data point 1
    rows[2][6] = ""
    rejects(path, header, rows, f"{path.name}:2: field 'Annotator_ID': value '{annotator}'",
            "answered only accurate, confidence of the three questions of data point 1 (no familiarity)")


def test_an_annotator_in_two_task_groups_is_imported_and_flagged(demo, export):
    """A participant who took two batches is imported with every answer kept; the design
    violations (their judgments of a base claim they saw in two framings) are flagged and
    left out by the on-by-default `design-violations` rule, counted in the report.

    Guards against refusing the whole file (the researcher then had no way in) and against
    counting a rater twice in a between-subjects comparison."""
    from annotation.analysis.options import AnalysisOptions
    from annotation.analysis.study import study_analysis

    path, header, rows, truth = export
    twice = rows[0][5]  # an annotator of task group 1, who then also takes task group 2 whole
    clock = datetime(2025, 3, 5, 9, 0, tzinfo=timezone.utc)
    for row in rows:
        if row[1] == "2":
            assert row[11] == ""  # group 2 has two raters: the third slot is free
            clock += timedelta(seconds=7)
            kind = question_kind(row[3])
            row[11:14] = [twice, {"accurate": "No", "confidence": "3", "familiarity": "2"}[kind],
                          clock.strftime("%Y-%m-%d %H:%M:%S")]
    output = import_results(write_export(path, header, rows))
    assert "204 judgments" in output and "16 participants" in output
    assert "1 participant(s) answered in more than one task group" in output
    study = Study.objects.get(name="From Prolific")
    participant = Participant.objects.get(study=study, external_id=twice)
    assert participant.judgments.count() == 24 and participant.status == "completed"
    assert participant.batch.index == 0 and "task groups 1 and 2" in participant.status_note
    assert [b.quota for b in study.batches.order_by("index")][:2] == [3, 3]

    quick = {"bootstrap_resamples": 0, "mixed_model": False, "permutations": 0}
    result = study_analysis(study=study, options=AnalysisOptions(**quick))
    rule = {row["rule"]: row for row in result.exclusions}["design-violations"]
    # Task group g shows base claim j in framing (j + g) mod 6: groups 1 and 2 differ on all 12.
    assert (rule["participants_flagged"], rule["judgments_flagged"]) == (1, 24)
    assert (rule["participants_removed"], rule["judgments_removed"]) == (1, 24)
    assert result.counts["judgments_analysed"] == 204 - 24
    rules = [name for name in AnalysisOptions().exclusions if name != "design-violations"]
    everyone = study_analysis(study=study, options=AnalysisOptions(exclusions=rules, **quick))
    assert everyone.counts["judgments_analysed"] == 204


def test_missing_columns_and_data_point_disagreements(demo, export):
    path, header, rows, _ = export
    rejects(path, [c if c != "Claim" else "Text" for c in header], rows,
            f"{path.name}:1: field 'header'", "missing column(s) Claim")
    changed = [list(r) for r in rows]
    changed[1][4] = changed[4][4]
    rejects(path, header, changed, f"{path.name}:3: field 'Claim'", "data point 1 has another text at line 2")


def test_refusals_before_reading(demo, export):
    path, header, rows, _ = export
    write_export(path, header, rows)
    rejects(path, header, rows, "not in", "nobody", extra=("--exclude", "nobody"))
    import_results(path, "Taken")
    before = database_counts()
    with pytest.raises(CommandError, match="a study named 'Taken' already exists"):
        import_results(path, "Taken")
    assert database_counts() == before
    empty = path.with_name("empty.csv")
    empty.write_text("")
    with pytest.raises(ProlificFileError, match="empty.csv: the file is empty"):
        read_prolific_results(empty)


def test_a_failure_while_writing_leaves_nothing(demo, export, monkeypatch):
    path, header, rows, _ = export
    write_export(path, header, rows)
    before = database_counts()

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(Judgment.objects, "bulk_create", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        import_results(path)
    assert database_counts() == before


def test_a_file_that_is_not_utf8_text(demo, tmp_path):
    path = tmp_path / "export.csv"
    path.write_bytes("DataPoint_ID,Task_Group_ID,Question,Claim\n1,1,Is this accurate?,Caf\u00e9\n".encode("latin-1"))
    before = database_counts()
    with pytest.raises(CommandError, match="export.csv: not UTF-8 text"):
        import_results(path)
    assert database_counts() == before
