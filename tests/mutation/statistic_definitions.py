"""What each per-framing statistic counts, written from its definition (not from the
analysis code), for the mutation tests of the rates and of the two-way interval."""
import math


def qualifies(row, name):
    """(value, counts) of one judgment for one statistic, from its definition."""
    true, accept = bool(row["true_claim"]), bool(row["accept"])
    correct = float(accept == true)
    kind = {"accuracy": (correct, True), "accuracy_true": (correct, true),
            "accuracy_false": (correct, not true), "acceptance_rate": (float(accept), True),
            "false_acceptance_rate": (float(accept), not true),
            "false_rejection_rate": (float(not accept), true)}
    if name in kind:
        value, counts = kind[name]
        return (value if counts else 0.0), counts
    value = row["confidence" if "confidence" in name else "familiarity"]
    counts = not math.isnan(value)
    if name.endswith("_true"):
        counts = counts and true
    elif name.endswith("_false"):
        counts = counts and not true
    return (value if counts else 0.0), counts
