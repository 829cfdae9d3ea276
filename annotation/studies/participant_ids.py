"""Who may enter a study, and with what: participant ids checked per source, sessions resumed
only with proof, and new sessions per client address limited (docs/security.md).

- **Ids.** Every id must be *safe* (the generic rule): 1 to `GENERIC_ID_MAX_CHARS` printable
  characters (`str.isprintable`: no control or format characters such as NUL, tab, CR/LF or
  the right-to-left override, no separators but the plain space), no space at either end, and
  not starting with a character a spreadsheet reads as a formula (`= + - @`). With
  `FRAMELAB_CHECK_PLATFORM_IDS` (on by default) the recruitment platforms' ids must also have
  their platform's form: Prolific's `PROLIFIC_PID`, `STUDY_ID` and `SESSION_ID` are 24
  hexadecimal characters, MTurk's `workerId`, `assignmentId` and `hitId` upper-case letters
  and digits, and both platforms' session ids (`SESSION_ID`, `assignmentId`) must be there.
- **Resuming.** The participant id alone is no proof: anyone who knows a `PROLIFIC_PID` could
  type it. An existing session is resumed by an entry with the same Prolific `SESSION_ID` (or
  MTurk `assignmentId`) as its first entry, or from the browser that made the first entry (a
  signed cookie set then, `RESUME_COOKIE`). Anything else is refused with a page that says what
  to do.
- **New sessions per address.** At most `FRAMELAB_PARTICIPANT_ENTRIES_PER_ADDRESS` new
  sessions per study from one client address (core/client_address.py: the trusted proxies
  rule; IPv6 by /64) within `FRAMELAB_PARTICIPANT_ENTRY_WINDOW_SECONDS`, counted in the shared
  cache with the login limits' atomic budget (core/login_limits.Budget), so that made-up ids
  from one machine cannot take every free slot of a study.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from django.conf import settings
from django.core import signing

from core.client_address import address_key
from core.login_limits import Budget, LockedOut

GENERIC_ID_MAX_CHARS = 100
FORMULA_LEADERS = ("=", "+", "-", "@")
PROLIFIC_ID = re.compile(r"[0-9a-fA-F]{24}")
MTURK_ID = re.compile(r"[A-Z0-9]{10,64}")

RESUME_SALT = "framelab.participant.resume"
RESUME_MAX_AGE = 60 * 60 * 24 * 90  # seconds: longer than any study's data collection


def resume_cookie_name(study_id: int) -> str:
    return f"framelab_s{study_id}"


class BadEntryLink(ValueError):
    """The entry link's `parameter` is missing or not of its platform's form; `problem` says
    how, in words for the participant (the value is not repeated: it may be unprintable)."""

    def __init__(self, parameter: str, problem: str, platform: str) -> None:
        super().__init__(f"{parameter}: {problem}")
        self.parameter, self.problem, self.platform = parameter, problem, platform


@dataclass(frozen=True)
class EntryProof:
    """What an entry shows to resume a session: the platform's session id in its link, and the
    participant pk from the resume cookie of the browser (None if it had none)."""

    platform_session_id: str = ""
    cookie_participant_pk: int | None = None


def generic_id_problem(value: str) -> str | None:
    """Why `value` is not a safe id, or None."""
    if not value or not value.strip():
        return "is empty"
    if len(value) > GENERIC_ID_MAX_CHARS:
        return f"is longer than {GENERIC_ID_MAX_CHARS} characters"
    if not value.isprintable():
        return "contains characters that are not printable (control or formatting characters)"
    if value != value.strip():
        return "starts or ends with a space"
    if value.startswith(FORMULA_LEADERS):
        return f"starts with {value[0]!r}, which spreadsheets read as a formula"
    return None


def _check(parameter: str, value: str, platform: str, pattern: re.Pattern | None, form: str) -> str:
    problem = generic_id_problem(value)
    if problem is None and pattern is not None and not pattern.fullmatch(value):
        problem = f"is not {form}"
    if problem is not None:
        raise BadEntryLink(parameter, problem, platform)
    return value


def entry_identity(query) -> dict | None:
    """The participant's identity from an entry link's query, checked; None when the link
    carries no id (the page then asks for one). Raises `BadEntryLink`."""
    from annotation.models import Participant

    strict = settings.FRAMELAB_CHECK_PLATFORM_IDS
    hexadecimal = "a Prolific id (24 characters, 0-9 and a-f)"
    mturk = "an MTurk id (capital letters and digits)"
    if "PROLIFIC_PID" in query:
        pattern = PROLIFIC_ID if strict else None
        identity = dict(
            source=Participant.Source.PROLIFIC,
            external_id=_check("PROLIFIC_PID", query["PROLIFIC_PID"], "Prolific", pattern, hexadecimal),
            platform_study_id=query.get("STUDY_ID", ""),
            platform_session_id=query.get("SESSION_ID", ""),
        )
        for parameter in ("STUDY_ID", "SESSION_ID"):
            value = query.get(parameter, "")
            if value or strict:
                _check(parameter, value, "Prolific", pattern, hexadecimal)
        return identity
    if "workerId" in query:
        pattern = MTURK_ID if strict else None
        identity = dict(
            source=Participant.Source.MTURK,
            external_id=_check("workerId", query["workerId"], "MTurk", pattern, mturk),
            platform_session_id=query.get("assignmentId", ""),
            mturk_hit_id=query.get("hitId", ""),
        )
        for parameter in ("assignmentId", "hitId"):
            value = query.get(parameter, "")
            if value or (strict and parameter == "assignmentId"):
                _check(parameter, value, "MTurk", pattern, mturk)
        return identity
    if "participant" in query:
        return dict(source=Participant.Source.GENERIC,
                    external_id=_check("participant", query["participant"], "", None, ""))
    return None


def may_resume(participant, proof: EntryProof) -> bool:
    """Whether `proof` shows the entry comes from the person who started `participant`'s
    session: the same platform session id as the first entry, or that browser's cookie."""
    if proof.cookie_participant_pk is not None and proof.cookie_participant_pk == participant.pk:
        return True
    stored = participant.platform_session_id
    return bool(stored) and proof.platform_session_id == stored


def resume_cookie_value(request, study_id: int) -> int | None:
    """The participant pk this browser's resume cookie for `study_id` names, if it is valid."""
    try:
        value = request.get_signed_cookie(resume_cookie_name(study_id), salt=RESUME_SALT,
                                          max_age=RESUME_MAX_AGE)
        return int(value)
    except (KeyError, signing.BadSignature, ValueError, TypeError):
        return None


def set_resume_cookie(response, participant) -> None:
    response.set_signed_cookie(
        resume_cookie_name(participant.study_id), str(participant.pk), salt=RESUME_SALT,
        max_age=RESUME_MAX_AGE, path=f"/s/{participant.study_id}/", httponly=True,
        secure=settings.SESSION_COOKIE_SECURE, samesite="Lax")


class TooManyEntries(Exception):
    """This address has started as many sessions of the study as it may for now."""

    def __init__(self, locked: LockedOut) -> None:
        super().__init__("too many new sessions from this address")
        self.locked = locked


def claim_entry_slot(study_id: int, address: str) -> None:
    """Counts a new session of `study_id` from `address`; raises `TooManyEntries` when the
    address has used its `FRAMELAB_PARTICIPANT_ENTRIES_PER_ADDRESS` within the window."""
    limit = settings.FRAMELAB_PARTICIPANT_ENTRIES_PER_ADDRESS
    if limit <= 0 or not address:
        return
    budget = Budget("participant-entry", f"{study_id}|{address_key(address)}", limit,
                    settings.FRAMELAB_PARTICIPANT_ENTRY_WINDOW_SECONDS)
    try:
        budget.claim()
    except LockedOut as locked:
        raise TooManyEntries(locked) from None
