"""Monte Carlo information-health trajectories under recommender-like exposure policies."""
