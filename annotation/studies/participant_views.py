"""The rater's pages: entry from a recruitment platform, consent, instructions, one claim at a
time, completion. They work without JavaScript; a small script adds keyboard shortcuts and
measures response time.

A participant is identified by the unguessable token in their URL, handed out at entry, so
these pages need no login; that token is also why they skip CSRF checks (a forged request
would need it). Entry checks the link's ids, resumes a session only with proof (the same
platform session id, or the resume cookie set at the first entry) and limits new sessions
per client address: annotation/studies/participant_ids.py.
"""
from __future__ import annotations

import uuid
from datetime import datetime

from django import forms
from django.core import signing
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from annotation.models import BatchItem, Judgment, Participant, Study
from annotation.studies.assignment import (
    ResumeRefused,
    StudyUnavailable,
    participant_consent,
    participant_enter,
)
from annotation.studies.judgments import (
    Answer,
    JudgmentOutOfOrder,
    JudgmentRefused,
    closed_reason,
    judgment_record,
)
from annotation.studies.participant_ids import (
    BadEntryLink,
    EntryProof,
    TooManyEntries,
    entry_identity,
    resume_cookie_value,
    set_resume_cookie,
)
from annotation.studies.selectors import batch_items
from core.client_address import client_address

TICKET_SALT = "framelab.participant.item"
MTURK_PREVIEW = "ASSIGNMENT_ID_NOT_AVAILABLE"
SCALE = [(str(n), str(n)) for n in range(1, 6)]
YES_NO = [("yes", "Yes"), ("no", "No")]


class JudgmentForm(forms.Form):
    accurate = forms.ChoiceField(choices=YES_NO, widget=forms.RadioSelect,
                                 error_messages={"required": "Please answer Yes or No."})
    confidence = forms.TypedChoiceField(choices=SCALE, coerce=int, widget=forms.RadioSelect,
                                        error_messages={"required": "Please choose 1 to 5."})
    familiarity = forms.TypedChoiceField(choices=SCALE, coerce=int, widget=forms.RadioSelect,
                                         error_messages={"required": "Please choose 1 to 5."})
    response_time_ms = forms.IntegerField(required=False, min_value=0, max_value=86_400_000,
                                          widget=forms.HiddenInput)
    ticket = forms.CharField(widget=forms.HiddenInput)


def _participant(study_id: int, token: str) -> Participant:
    return get_object_or_404(Participant.objects.select_related("study"),
                             study_id=study_id, token=token)


def _page(request, template, participant=None, study=None, status=200, **context):
    study = study or participant.study
    return render(request, f"annotation/participant/{template}",
                  {"study": study, "participant": participant, **context}, status=status)


def answered_positions(participant: Participant) -> set[int]:
    return set(Judgment.objects.filter(participant=participant).values_list("position", flat=True))


def _next_position(participant: Participant, answered: set[int] | None = None) -> int | None:
    if answered is None:
        answered = answered_positions(participant)
    return next((p for p in sorted(batch_items(participant.batch_id)) if p not in answered), None)


def _participant_url(participant: Participant, name: str = "participant-home", **kwargs) -> str:
    return reverse(f"annotation:{name}", kwargs={"study_id": participant.study_id,
                                                  "token": participant.token, **kwargs})


@csrf_exempt
@require_http_methods(["GET"])
def study_entry(request, study_id: int):
    study = get_object_or_404(Study, pk=study_id)
    query = request.GET
    if query.get("assignmentId") == MTURK_PREVIEW:
        return _page(request, "preview.html", study=study)
    try:
        identity = entry_identity(query)
    except BadEntryLink as bad:
        if bad.parameter == "participant":
            # Typed into the page that asks for an id: ask again, saying what was wrong.
            return _page(request, "ask_id.html", study=study, status=400,
                         error=f"That participant ID {bad.problem}. Please check it and try again.")
        return _page(request, "bad_link.html", study=study, status=400, bad=bad)
    if identity is None:
        return _page(request, "ask_id.html", study=study)
    proof = EntryProof(platform_session_id=identity.get("platform_session_id", ""),
                       cookie_participant_pk=resume_cookie_value(request, study.pk))
    try:
        participant = participant_enter(study=study, **identity, proof=proof,
                                        entry_address=client_address(request))
    except StudyUnavailable as unavailable:
        return _page(request, "unavailable.html", study=study, reason=unavailable.reason, status=403)
    except ResumeRefused:
        return _page(request, "resume_refused.html", study=study, status=403,
                     platform=_platform_name(identity["source"]))
    except TooManyEntries as too_many:
        response = _page(request, "too_many_entries.html", study=study, status=429,
                         until=too_many.locked.until_datetime)
        response["Retry-After"] = str(too_many.locked.retry_after)
        return response
    response = redirect(_participant_url(participant))
    set_resume_cookie(response, participant)
    return response


def _platform_name(source: str) -> str:
    return {Participant.Source.PROLIFIC: "Prolific", Participant.Source.MTURK: "MTurk"}.get(source, "")


@require_http_methods(["GET"])
def participant_home(request, study_id: int, token: str):
    """Sends a returning participant to wherever they are in the study."""
    participant = _participant(study_id, token)
    status = participant.status
    if status == Participant.Status.CONSENTING:
        return redirect(_participant_url(participant, "participant-consent"))
    if status == Participant.Status.ACTIVE:
        position = _next_position(participant)
        if position is None:
            return redirect(_participant_url(participant, "participant-done"))
        return redirect(_participant_url(participant, "participant-item", position=position))
    if status == Participant.Status.COMPLETED or participant.completed_at:
        return redirect(_participant_url(participant, "participant-done"))
    return _page(request, "unavailable.html", participant, status=403,
                 reason=closed_reason(participant))


@csrf_exempt
@require_http_methods(["GET", "POST"])
def participant_consent_page(request, study_id: int, token: str):
    participant = _participant(study_id, token)
    if participant.status != Participant.Status.CONSENTING:
        return redirect(_participant_url(participant))
    if request.method == "POST":
        if request.POST.get("consent") != "yes":
            return _page(request, "consent.html", participant, status=400,
                         error="To take part, please tick the box to give your consent.")
        try:
            participant_consent(participant=participant)
        except StudyUnavailable as unavailable:
            return _page(request, "unavailable.html", participant, reason=unavailable.reason,
                         status=403)
        return redirect(_participant_url(participant, "participant-instructions"))
    return _page(request, "consent.html", participant)


@require_http_methods(["GET"])
def participant_instructions(request, study_id: int, token: str):
    participant = _participant(study_id, token)
    if participant.status != Participant.Status.ACTIVE:
        return redirect(_participant_url(participant))
    return _page(request, "instructions.html", participant,
                 first_item=_participant_url(participant, "participant-item",
                                             position=_next_position(participant) or 1))


@csrf_exempt
@require_http_methods(["GET", "POST"])
def participant_item(request, study_id: int, token: str, position: int):
    participant = _participant(study_id, token)
    if participant.status != Participant.Status.ACTIVE:
        return redirect(_participant_url(participant))
    items = batch_items(participant.batch_id)
    item = items.get(position)
    if item is None:
        raise Http404("No such item in your session.")
    total = len(items)
    if request.method == "GET":
        answered = answered_positions(participant)
        next_open = _next_position(participant, answered)
        if next_open is not None and position > next_open:
            # Items are answered in order; a hand-typed later position goes to the first open one.
            return redirect(_participant_url(participant, "participant-item", position=next_open))

    if request.method == "POST":
        form = JudgmentForm(request.POST)
        ticket = _read_ticket(request.POST.get("ticket", ""), participant, item)
        if ticket is None:
            return _page(request, "unavailable.html", participant, status=400,
                         reason="This page was out of date or altered. Please go back to the study.",
                         retry_url=_participant_url(participant))
        if form.is_valid():
            answer = Answer(
                accept=form.cleaned_data["accurate"] == "yes",
                confidence=form.cleaned_data["confidence"],
                familiarity=form.cleaned_data["familiarity"],
                shown_at=ticket[0], submission_key=ticket[1],
                response_time_ms=form.cleaned_data["response_time_ms"],
            )
            try:
                recorded = judgment_record(participant=participant, item=item, answer=answer)
            except JudgmentOutOfOrder as out_of_order:
                return redirect(_participant_url(participant, "participant-item",
                                                 position=out_of_order.next_position))
            except JudgmentRefused as refused:
                return _page(request, "unavailable.html", participant, status=409,
                             reason=refused.reason, retry_url=_participant_url(participant))
            if recorded.finished:
                return redirect(_participant_url(participant, "participant-done"))
            following = _next_position(participant, recorded.answered_positions)
            if following is None:
                return redirect(_participant_url(participant, "participant-done"))
            return redirect(_participant_url(participant, "participant-item", position=following))
        status = 400
    else:
        initial = {}
        previous = (Judgment.objects.filter(participant=participant, item=item).first()
                    if position in answered else None)
        if previous is not None:
            initial = {"accurate": "yes" if previous.accept else "no",
                       "confidence": str(previous.confidence), "familiarity": str(previous.familiarity)}
        form = JudgmentForm(initial={**initial, "ticket": _new_ticket(participant, item)})
        status = 200
    # The radio groups are written out in the template: rendering them through Django's
    # widget templates took a third of an item page's time (bench/raters.py).
    values = form.data if form.is_bound else form.initial
    return _page(
        request, "item.html", participant, status=status, form=form, item=item,
        position=position, total=total, yes_no=YES_NO, scale=SCALE,
        accurate_value=str(values.get("accurate", "")),
        confidence_value=str(values.get("confidence", "")),
        familiarity_value=str(values.get("familiarity", "")),
        ticket=values.get("ticket", ""),
        previous_url=(_participant_url(participant, "participant-item", position=position - 1)
                      if position > 1 else None),
        action=_participant_url(participant, "participant-item", position=position),
    )


@require_http_methods(["GET"])
def participant_done(request, study_id: int, token: str):
    participant = _participant(study_id, token)
    if participant.completed_at is None:
        return redirect(_participant_url(participant))
    return _page(request, "done.html", participant)


def _new_ticket(participant: Participant, item: BatchItem) -> str:
    """A signed note of who was shown which item when, and the key its submission carries."""
    return signing.dumps([participant.pk, item.pk, timezone.now().isoformat(), uuid.uuid4().hex],
                         salt=TICKET_SALT, compress=False)


def _read_ticket(value: str, participant: Participant, item: BatchItem):
    """(shown_at, submission key) from a ticket of this participant and item, else None.

    Everything in it is parsed inside the `try`: a ticket that is signed but malformed (a
    time that is no time or lacks its zone, a key that is no UUID, another shape) is out of
    date like a tampered one, never a server error."""
    try:
        participant_pk, item_pk, shown_at, key = signing.loads(value, salt=TICKET_SALT)
        if participant_pk != participant.pk or item_pk != item.pk:
            return None
        shown = datetime.fromisoformat(shown_at)
        if timezone.is_naive(shown):
            return None
        return shown, uuid.UUID(key)
    except (signing.BadSignature, ValueError, TypeError, AttributeError):
        return None
