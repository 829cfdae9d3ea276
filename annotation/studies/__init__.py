"""Human studies: the balanced design, study set-up, handing out batches, recording judgments,
the invariants that hold them together, the participants' and the researcher's study pages,
and simulated participants (bots)."""
