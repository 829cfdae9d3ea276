"""Choose a human study's base claims and deal their framed versions into balanced rater batches."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from core.vocabulary import FRAMINGS, TRUTH_LABELS

__all__ = [
    "CandidateClaim",
    "DesignError",
    "DesignItem",
    "StudyDesign",
    "design_study",
    "feasible_batch_sizes",
    "insert_attention_checks",
]

T = TypeVar("T")
U = TypeVar("U")

_TRUE_LABEL, _FALSE_LABEL = TRUTH_LABELS
# Error messages list at most this many ids or sizes, so a mistake over a large pool stays
# readable; the counts are always given in full.
_MAX_LISTED = 12
# Batch sizes are listed more generously: FrameRef's 240 items have 15 that work.
_MAX_SIZES = 20


class DesignError(ValueError):
    """A design that cannot be built: why (`problem`) and what would work (`suggestion`)."""

    def __init__(self, problem: str, suggestion: str) -> None:
        # Both parts travel in `args` so the error pickles (Celery) and callers can show the
        # suggestion on its own.
        super().__init__(problem, suggestion)
        self.problem = problem
        self.suggestion = suggestion

    def __str__(self) -> str:
        return f"{self.problem}; {self.suggestion}"


@dataclass(frozen=True)
class CandidateClaim:
    """A base claim that may enter a study.

    `true_label` is "SUPPORTS" or "REFUTES"; `framed_claim_ids` maps framing -> framed claim id
    and holds only the framings that exist for this base claim.
    """

    base_claim_id: int
    true_label: str
    framed_claim_ids: Mapping[str, int]


@dataclass(frozen=True)
class DesignItem:
    """One framed claim as a rater will see it."""

    framed_claim_id: int
    base_claim_id: int
    framing: str
    true_label: str


@dataclass(frozen=True)
class StudyDesign:
    """A study's base claims and its batches, one batch per rater assignment.

    `base_claim_ids`: the chosen base claims, in a seeded order; `framings`: the framings
    shown; `batches[b][k]`: the item rater batch `b` sees at position `k` (0-based).
    """

    base_claim_ids: tuple[int, ...]
    framings: tuple[str, ...]
    batches: tuple[tuple[DesignItem, ...], ...]


def feasible_batch_sizes(n_base_claims: int, n_framings: int) -> tuple[int, ...]:
    """Batch sizes a study of `n_base_claims` x `n_framings` items can use, ascending.

    A size must divide the item count (all batches equal) and be at most `n_base_claims`
    (a batch holds at most one framing of each base claim).
    """
    items = n_base_claims * n_framings
    return tuple(size for size in range(1, n_base_claims + 1) if items % size == 0)


def design_study(
    *,
    candidates: Sequence[CandidateClaim],
    framings: Sequence[str],
    base_claims: int | None,
    batch_size: int,
    seed: int,
    base_claim_ids: Sequence[int] | None = None,
) -> StudyDesign:
    """Choose base claims and deal every (base claim, framing) item into equal rater batches.

    Only candidates with every framing in `framings` qualify. With `base_claim_ids`, exactly
    those base claims are used (`base_claims` must then be None or their count); otherwise
    `base_claims` (even) are drawn uniformly from the seed, half true and half false.

    With n base claims of which t are true, F framings and batch size s (s divides n*F and
    s <= n), the design has B = n*F/s batches of s items and guarantees:

    - every (base claim, framing) item appears exactly once, and no batch holds two items of
      one base claim (each base claim is seen in F different batches);
    - every batch has floor(s*t/n) or ceil(s*t/n) true items. For a balanced choice
      (t = n/2) that is s/2 true and s/2 false when s is even, and a difference of exactly
      one when s is odd;
    - every framing appears floor(s/F) or ceil(s/F) times in every batch, so within a batch
      the framing counts differ by at most one, and not at all when F divides s.

    Both bounds are the best possible: the totals are fixed, so the mean per batch is s*t/n
    true items and s/F items per framing, and a whole count can only be its floor or ceiling.
    For FrameRef's study (40 base claims, 20 true, six framings, batches of 20) that is 12
    batches, each with 10 true and 10 false items and every framing 3 or 4 times (two
    framings 4 times, four framings 3 times).

    The same arguments give the identical design (candidates and listed ids are read in id
    order, so their order does not matter); another seed almost always gives another one.
    Presentation order within each batch is shuffled so position effects average out over
    raters.

    Raises DesignError, naming the problem and what would work, when the request is
    infeasible or malformed.
    """
    framings = _checked_framings(framings)
    by_id = _index_candidates(candidates)
    # One generator for every random choice, drawn from in a fixed order, is what makes the
    # design a function of the arguments alone.
    rng = random.Random(seed)
    if base_claim_ids is None:
        chosen = _choose_balanced(by_id, framings, base_claims, batch_size, rng)
    else:
        chosen = _take_listed(by_id, framings, base_claims, base_claim_ids)
    _check_batch_size(batch_size, len(chosen), framings)
    _check_framed_ids_distinct(chosen, framings)

    n_true = sum(c.true_label == _TRUE_LABEL for c in chosen)
    truth_pattern = _truth_pattern(len(chosen), n_true, rng)
    rounds = _deal_rounds(chosen, truth_pattern, len(framings), batch_size, rng)
    sequence = [claim for round_ in rounds for claim in round_]
    batch_claims = [sequence[start:start + batch_size]
                    for start in range(0, len(sequence), batch_size)]
    framing_index = _assign_framings(batch_claims, len(chosen), len(framings), rng)

    batches = []
    for b, claims in enumerate(batch_claims):
        batch = [
            DesignItem(
                framed_claim_id=chosen[claim].framed_claim_ids[framings[framing_index[b][k]]],
                base_claim_id=chosen[claim].base_claim_id,
                framing=framings[framing_index[b][k]],
                true_label=chosen[claim].true_label,
            )
            for k, claim in enumerate(claims)
        ]
        rng.shuffle(batch)
        batches.append(tuple(batch))
    return StudyDesign(
        base_claim_ids=tuple(chosen[claim].base_claim_id for claim in rounds[0]),
        framings=framings,
        batches=tuple(batches),
    )


def insert_attention_checks(
    batch: Sequence[T], checks: Sequence[U], positions: Sequence[int]
) -> list[T | U]:
    """`batch` with `checks[k]` placed at 1-based position `positions[k]` of the result.

    The result has len(batch) + len(checks) entries; the batch's items keep their order in
    the remaining positions. Positions must be distinct whole numbers in 1..len(result), one
    per check, else DesignError.
    """
    total = len(batch) + len(checks)
    if len(positions) != len(checks):
        raise DesignError(
            f"{len(checks)} attention checks but {len(positions)} positions were given",
            f"give exactly one position per check, each between 1 and {total}",
        )
    for position in positions:
        # bool is an int subclass, but True as "position 1" is almost certainly a mistake.
        if isinstance(position, bool) or not isinstance(position, int):
            raise DesignError(
                f"attention check position {position!r} is not a whole number",
                f"use whole numbers between 1 and {total}",
            )
    out_of_range = [p for p in positions if not 1 <= p <= total]
    if out_of_range:
        raise DesignError(
            f"attention check positions {_listed(out_of_range)} fall outside 1..{total} "
            f"({len(batch)} items + {len(checks)} checks)",
            f"use positions between 1 and {total}",
        )
    repeated = sorted({p for p in positions if positions.count(p) > 1})
    if repeated:
        raise DesignError(
            f"attention check positions {_listed(repeated)} are given more than once",
            f"give each check its own position between 1 and {total}",
        )
    check_at = dict(zip(positions, checks))
    items = iter(batch)
    return [check_at[p] if p in check_at else next(items) for p in range(1, total + 1)]


# ---------------------------------------------------------------------------------------
# Validating the request and choosing base claims


def _checked_framings(framings: Sequence[str]) -> tuple[str, ...]:
    if isinstance(framings, str):
        # A bare string is a sequence of letters, which would otherwise fail as "unknown".
        raise DesignError(f"framings must be a list of framings, not the string {framings!r}",
                          f"pass framings=[{framings!r}]")
    framings = tuple(framings)
    if not framings:
        raise DesignError("no framings were requested",
                          f"request one or more of {', '.join(FRAMINGS)}")
    unknown = [f for f in framings if f not in FRAMINGS]
    if unknown:
        raise DesignError(f"unknown framings {_listed(unknown)}",
                          f"use framings from {', '.join(FRAMINGS)}")
    repeated = sorted({f for f in framings if framings.count(f) > 1}, key=FRAMINGS.index)
    if repeated:
        unique = list(dict.fromkeys(framings))
        raise DesignError(f"framings {_listed(repeated)} are requested more than once",
                          f"request each framing once: {', '.join(unique)}")
    return framings


def _index_candidates(candidates: Sequence[CandidateClaim]) -> dict[int, CandidateClaim]:
    """Candidates by base claim id, in ascending id order so that input order does not matter."""
    by_id: dict[int, CandidateClaim] = {}
    for candidate in candidates:
        if candidate.true_label not in TRUTH_LABELS:
            raise DesignError(
                f"base claim {candidate.base_claim_id} has true_label {candidate.true_label!r}",
                f"use {_TRUE_LABEL} or {_FALSE_LABEL}",
            )
        if candidate.base_claim_id in by_id:
            raise DesignError(
                f"base claim {candidate.base_claim_id} is among the candidates more than once",
                "list each base claim once, with all its framings in framed_claim_ids",
            )
        by_id[candidate.base_claim_id] = candidate
    return {claim_id: by_id[claim_id] for claim_id in sorted(by_id)}


def _qualifies(candidate: CandidateClaim, framings: tuple[str, ...]) -> bool:
    return all(f in candidate.framed_claim_ids for f in framings)


def _choose_balanced(
    by_id: dict[int, CandidateClaim],
    framings: tuple[str, ...],
    base_claims: int | None,
    batch_size: int,
    rng: random.Random,
) -> list[CandidateClaim]:
    qualifying = [c for c in by_id.values() if _qualifies(c, framings)]
    true_pool = [c for c in qualifying if c.true_label == _TRUE_LABEL]
    false_pool = [c for c in qualifying if c.true_label == _FALSE_LABEL]
    largest = 2 * min(len(true_pool), len(false_pool))
    available = (f"{len(true_pool)} true and {len(false_pool)} false candidates have all of "
                 f"the framings {', '.join(framings)}")
    if largest == 0:
        advice = ("add true and false candidates with every requested framing, request fewer "
                  "framings, or list the base claims yourself with base_claim_ids")
    else:
        advice = f"the largest feasible base_claims is {largest}"
    if base_claims is None:
        raise DesignError("neither base_claims nor base_claim_ids was given",
                          f"give an even base_claims ({available}; {advice}) "
                          "or list the base claims with base_claim_ids")
    if isinstance(base_claims, bool) or not isinstance(base_claims, int):
        raise DesignError(f"base_claims={base_claims!r} is not a whole number",
                          f"give an even whole number; {advice}")
    if base_claims < 2:
        raise DesignError(
            f"base_claims={base_claims} leaves no claims to study",
            f"give an even number of at least 2, e.g. base_claims=2; {advice}",
        )
    if base_claims % 2:
        # Half true and half false needs an even count; offer both neighbours so the caller
        # can decide between losing and adding a claim.
        raise DesignError(
            f"base_claims={base_claims} cannot be split half true, half false",
            f"use base_claims={base_claims - 1} or base_claims={base_claims + 1}"
            if base_claims > 1 else "use base_claims=2",
        )
    if base_claims > largest:
        raise DesignError(
            f"base_claims={base_claims} needs {base_claims // 2} true and {base_claims // 2} "
            f"false base claims, but only {available}",
            advice + _base_claims_for_batch_size(batch_size, len(framings), largest),
        )
    half = base_claims // 2
    return rng.sample(true_pool, half) + rng.sample(false_pool, half)


def _base_claims_for_batch_size(batch_size: int, n_framings: int, largest: int) -> str:
    """A hint naming the largest base_claims that also fits `batch_size`, or '' if none does."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        return ""
    fitting = [n for n in range(largest, 1, -2)
               if n >= batch_size and n * n_framings % batch_size == 0]
    if not fitting or fitting[0] == largest:
        return ""
    return f" (the largest that also works with batch_size={batch_size} is {fitting[0]})"


def _take_listed(
    by_id: dict[int, CandidateClaim],
    framings: tuple[str, ...],
    base_claims: int | None,
    base_claim_ids: Sequence[int],
) -> list[CandidateClaim]:
    ids = list(base_claim_ids)
    if not ids:
        raise DesignError("base_claim_ids is empty",
                          "list at least one base claim, or pass base_claim_ids=None and "
                          "an even base_claims to have them chosen")
    if base_claims is not None and base_claims != len(ids):
        raise DesignError(
            f"base_claims={base_claims} but {len(ids)} base_claim_ids were given",
            f"pass base_claims=None (or {len(ids)}) with base_claim_ids",
        )
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise DesignError(f"base_claim_ids lists {_listed(repeated)} more than once",
                          "list each base claim once")
    qualifying = [claim_id for claim_id, c in by_id.items() if _qualifies(c, framings)]
    hint = (f"choose from the {len(qualifying)} candidates with every requested framing, e.g. "
            f"{_listed(qualifying)}" if qualifying else
            "no candidate has every requested framing; request fewer framings")
    unknown = [i for i in ids if i not in by_id]
    if unknown:
        raise DesignError(f"base_claim_ids {_listed(unknown)} are not among the candidates",
                          f"drop them or add them as candidates; {hint}")
    lacking = [i for i in ids if not _qualifies(by_id[i], framings)]
    if lacking:
        details = "; ".join(
            f"{i} lacks {', '.join(f for f in framings if f not in by_id[i].framed_claim_ids)}"
            for i in lacking[:_MAX_LISTED]
        )
        raise DesignError(
            f"base claims without every requested framing ({', '.join(framings)}): {details}"
            + (f"; and {len(lacking) - _MAX_LISTED} more" if len(lacking) > _MAX_LISTED else ""),
            f"drop them or request fewer framings; {hint}",
        )
    # Id order, so that the order of the list does not change the design.
    return [by_id[i] for i in sorted(ids)]


def _check_batch_size(batch_size: int, n_claims: int, framings: tuple[str, ...]) -> None:
    n_framings = len(framings)
    items = n_claims * n_framings
    sizes = feasible_batch_sizes(n_claims, n_framings)
    shape = f"{items} items ({n_claims} base claims x {n_framings} framings)"
    works = _sizes_near(sizes, batch_size)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise DesignError(f"batch_size={batch_size!r} is not a positive whole number", works)
    if batch_size > n_claims:
        # Each of a batch's items must come from a different base claim, and each base claim
        # needs one batch per framing: one condition seen from either side.
        raise DesignError(
            f"a batch of {batch_size} would need {batch_size} different base claims but the "
            f"study has {n_claims}; equivalently {items} items in batches of {batch_size} "
            f"give fewer than the {n_framings} batches needed to keep each base claim's "
            f"{n_framings} framings apart",
            f"the largest batch size that fits is {sizes[-1]}; {works}",
        )
    if items % batch_size:
        raise DesignError(
            f"{shape} cannot be dealt into equal batches of {batch_size}",
            f"use a batch size that divides {items}; {works}",
        )


def _check_framed_ids_distinct(chosen: list[CandidateClaim], framings: tuple[str, ...]) -> None:
    # Two items sharing a framed claim id would be indistinguishable in the rater records.
    seen: dict[int, tuple[int, str]] = {}
    for candidate in chosen:
        for framing in framings:
            framed = candidate.framed_claim_ids[framing]
            if framed in seen:
                other_claim, other_framing = seen[framed]
                raise DesignError(
                    f"framed claim id {framed} is used by base claim {other_claim} "
                    f"({other_framing}) and base claim {candidate.base_claim_id} ({framing})",
                    "give every framed version its own id",
                )
            seen[framed] = (candidate.base_claim_id, framing)


def _listed(values: Sequence) -> str:
    """Comma-separated values, shortened to _MAX_LISTED with a count of the rest."""
    values = list(values)
    if len(values) <= _MAX_LISTED:
        return ", ".join(map(str, values))
    return ", ".join(map(str, values[:_MAX_LISTED])) + f" and {len(values) - _MAX_LISTED} more"


def _sizes_near(sizes: Sequence[int], wanted: object) -> str:
    """The batch sizes that work, or when there are many the _MAX_SIZES nearest `wanted`."""
    if len(sizes) <= _MAX_SIZES:
        return f"batch sizes that work: {', '.join(map(str, sizes))}"
    target = max(wanted, 1) if isinstance(wanted, int) and not isinstance(wanted, bool) else 1
    nearest = sorted(sorted(sizes, key=lambda size: (abs(size - target), size))[:_MAX_SIZES])
    return (f"the {_MAX_SIZES} batch sizes that work nearest {target} are "
            f"{', '.join(map(str, nearest))} (of {len(sizes)}, from 1 to {sizes[-1]})")


# ---------------------------------------------------------------------------------------
# Dealing
#
# The items are laid out as one sequence of F rounds; every round lists every base claim once,
# and batch b is the window sequence[b*s:(b+1)*s]. Because s <= n, a window lies inside one
# round or straddles two, so it repeats a base claim only if the end of one round and the
# start of the next share a claim, which _deal_rounds rules out. The truth of the claim at
# position i of a round is the same in every round (a pattern spreading the true claims as
# evenly as possible), which fixes every window's truth count. Framings are then assigned by
# an equitable edge colouring, which can balance them without touching the batches.


def _truth_pattern(n_claims: int, n_true: int, rng: random.Random) -> list[bool]:
    """`pattern[i]`: bool[n_claims], whether position i of every round holds a true claim.

    A mechanical (Sturmian) word: pattern[i] = floor((i+1+o)t/n) - floor((i+o)t/n). Repeated
    round after round it is n-periodic, so any s consecutive positions hold
    floor((x+s)t/n) - floor(x*t/n) true claims for some x, i.e. floor(s*t/n) or
    ceil(s*t/n). With t = n/2 it alternates true and false. The seeded phase o spreads which
    windows get the extra true claim when s*t/n is not whole.
    """
    phase = rng.randrange(n_claims)
    return [((i + 1 + phase) * n_true // n_claims) - ((i + phase) * n_true // n_claims) > 0
            for i in range(n_claims)]


def _deal_rounds(
    chosen: list[CandidateClaim],
    truth_pattern: list[bool],
    n_framings: int,
    batch_size: int,
    rng: random.Random,
) -> list[list[int]]:
    """`rounds[r][i]`: int[F][n], index into `chosen` of the claim at position i of round r.

    Each round is a seeded permutation that puts true claims where the pattern is true. A
    window that straddles rounds r-1 and r takes the last `tail` positions of round r-1 and
    the first `head` of round r (tail + head = s); round r fills its head from claims not in
    that tail. That is always possible: the window holds at most ceil(s*t/n) <= t true
    positions, and likewise for false ones, so each truth group has enough claims left over.
    """
    n = len(chosen)
    groups = {truth: [i for i, c in enumerate(chosen) if (c.true_label == _TRUE_LABEL) == truth]
              for truth in (True, False)}
    slots = {truth: [i for i in range(n) if truth_pattern[i] == truth] for truth in (True, False)}
    rounds: list[list[int]] = []
    for r in range(n_framings):
        # The window holding round r's first position starts at the last multiple of s at or
        # before r*n; whatever of it lies in round r-1 must not reappear in round r's head.
        window_start = (r * n) // batch_size * batch_size
        head = 0 if r == 0 or window_start == r * n else window_start + batch_size - r * n
        tail = set(rounds[-1][n - (batch_size - head):]) if head else set()
        round_ = [0] * n
        for truth in (True, False):
            head_slots = [i for i in slots[truth] if i < head]
            fresh = [c for c in groups[truth] if c not in tail]
            head_claims = rng.sample(fresh, len(head_slots))
            taken = set(head_claims)
            rest = [c for c in groups[truth] if c not in taken]
            rng.shuffle(rest)
            for slot, claim in zip(slots[truth], head_claims + rest):
                round_[slot] = claim
        rounds.append(round_)
    return rounds


def _assign_framings(
    batch_claims: list[list[int]], n_claims: int, n_framings: int, rng: random.Random
) -> list[list[int]]:
    """`framing[b][k]`: int[B][s], framing index of the item of claim batch_claims[b][k].

    An equitable edge colouring (de Werra) of the bipartite graph claims x batches, one edge
    per (claim, batch) pair, with F colours = framings. Each batch's edges are cut into groups
    of F (the last group smaller) and the groups, not the batches, become the right-hand
    vertices; every vertex then has degree <= F, so König's theorem gives a proper colouring
    with F colours, found edge by edge with alternating-path swaps. A claim (degree F) then
    gets every framing once; each full group holds every framing once and the last group
    each at most once, so a batch holds each framing floor(s/F) or ceil(s/F) times.
    """
    # group_of[b][k]: the right-hand vertex of edge (b, k).
    group_of: list[list[int]] = []
    n_groups = 0
    edges: list[tuple[int, int, int, int]] = []  # (claim, group, batch, position in batch)
    for b, claims in enumerate(batch_claims):
        # Shuffled so which claims share a group (and so which framings they can get
        # together) varies with the seed.
        positions = list(range(len(claims)))
        rng.shuffle(positions)
        groups = [0] * len(claims)
        for rank, k in enumerate(positions):
            groups[k] = n_groups + rank // n_framings
            edges.append((claims[k], groups[k], b, k))
        n_groups += -(-len(claims) // n_framings)
        group_of.append(groups)
    rng.shuffle(edges)

    # claim_at[c][f] = group joined to claim c by an edge of colour f, and group_at the
    # reverse; None where colour f is free at that vertex.
    claim_at: list[list[int | None]] = [[None] * n_framings for _ in range(n_claims)]
    group_at: list[list[int | None]] = [[None] * n_framings for _ in range(n_groups)]
    for claim, group, _, _ in edges:
        free_at_claim = [f for f in range(n_framings) if claim_at[claim][f] is None]
        a = rng.choice(free_at_claim)
        if group_at[group][a] is not None:
            b = rng.choice([f for f in range(n_framings) if group_at[group][f] is None])
            _swap_path(group, a, b, claim_at, group_at)
        claim_at[claim][a] = group
        group_at[group][a] = claim

    framing = [[0] * len(claims) for claims in batch_claims]
    framing_of_edge = {(claim_at[c][f], c): f for c in range(n_claims) for f in range(n_framings)}
    for b, claims in enumerate(batch_claims):
        for k, claim in enumerate(claims):
            framing[b][k] = framing_of_edge[(group_of[b][k], claim)]
    return framing


def _swap_path(
    group: int,
    a: int,
    b: int,
    claim_at: list[list[int | None]],
    group_at: list[list[int | None]],
) -> None:
    """Swap colours a and b along the path from `group` that alternates a, b, a, ...

    Afterwards colour a is free at `group`. The path enters claims only by a-edges, so it
    never reaches the claim being coloured (a is free there), and it cannot close into a
    cycle because b is free at `group`: the swap leaves the colouring proper.
    """
    path: list[tuple[int, int, int]] = []  # (claim, group, colour)
    at_group, vertex, colour = True, group, a
    while True:
        if at_group:
            other = group_at[vertex][colour]
            if other is None:
                break
            path.append((other, vertex, colour))
        else:
            other = claim_at[vertex][colour]
            if other is None:
                break
            path.append((vertex, other, colour))
        vertex, at_group, colour = other, not at_group, (b if colour == a else a)
    for claim, grp, colour in path:
        claim_at[claim][colour] = None
        group_at[grp][colour] = None
    for claim, grp, colour in path:
        swapped = b if colour == a else a
        claim_at[claim][swapped] = grp
        group_at[grp][swapped] = claim
