"""Study analysis: the pure statistics of a framing study, the bridge from a study's stored
judgments to them, the human profile models and simulations match, the report's figures and
pages."""
