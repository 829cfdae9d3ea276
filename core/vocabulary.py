"""The fixed vocabularies of FrameRef's data: framings, truth labels and splits.

Kept free of Django so the file readers, the synthetic generator and the numeric cores can
share them.
"""

FRAMINGS = ("original", "authoritative", "consensus", "emotional", "prestige", "sensationalist")
TRUTH_LABELS = ("SUPPORTS", "REFUTES")
SPLITS = ("train", "dev", "test")
# A base claim outside any split is stored with this value; on disk its rows live under
# a folder of the same name.
NO_SPLIT = "none"
