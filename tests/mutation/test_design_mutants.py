"""Study designs (annotation/studies/design.py) over many seeds for every batch size whose
batches straddle the dealing rounds: the guarantees hold for each seed, not just for the
examples hypothesis happens to draw."""
import pytest

from annotation.studies.design import design_study, feasible_batch_sizes
from core.vocabulary import FRAMINGS
from tests.annotation.test_design import check_design, pool


@pytest.mark.parametrize("n_base, n_framings", [(6, 5), (10, 6), (12, 4), (8, 3)])
def test_every_seed_keeps_every_guarantee_when_batches_straddle_rounds(n_base, n_framings):
    """Guards against the dealing of a round ignoring the previous round's tail (a batch
    that straddles two rounds would then hold two framings of one base claim) and against
    a round drawing more head positions than the tail leaves claims for."""
    framings = FRAMINGS[:n_framings]
    candidates = pool(n_base // 2, n_base - n_base // 2, framings)
    straddling = [s for s in feasible_batch_sizes(n_base, n_framings) if n_base % s]
    assert straddling
    for batch_size in straddling:
        for seed in range(25):
            design = design_study(candidates=candidates, framings=framings, base_claims=n_base,
                                  batch_size=batch_size, seed=seed)
            check_design(design, candidates, framings, batch_size)
