"""Who may use the researchers' API, and who may change a study's sharing.

A researcher is any active, signed-in user: the platform has no other kind of account
(participants are anonymous sessions keyed by their recruitment platform's id and never
hold a Django login), so staff status is not required. Which studies a researcher sees is
not a permission but a filter: every study-scoped query goes through
`annotation.claims.selectors.studies_visible_to`, so another researcher's study answers 404, as if
it did not exist, rather than 403, which would confirm that it does.
"""
from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission


def is_researcher(user) -> bool:
    return bool(user and user.is_authenticated and user.is_active)


def may_share(user, study) -> bool:
    """Only a study's owner (or a superuser) adds or removes its collaborators;
    collaborators manage the study but cannot hand it on."""
    return bool(user.is_superuser or (study.owner_id is not None and study.owner_id == user.pk))


class IsResearcher(BasePermission):
    """Every API endpoint: an active, authenticated user."""

    message = "Sign in as a researcher (session or `Authorization: Token <key>`)."

    def has_permission(self, request, view) -> bool:
        return is_researcher(request.user)


class MayChangeSharing(BasePermission):
    """Reading a study's collaborators is for anyone who sees the study; changing them is for
    its owner. The study itself is looked up through `studies_visible_to` first, so this is
    only asked about studies the user may see (a 403 here reveals nothing new)."""

    message = "Only the study's owner can change who it is shared with."

    def has_object_permission(self, request, view, obj) -> bool:
        return request.method in SAFE_METHODS or may_share(request.user, obj)
