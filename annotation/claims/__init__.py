"""Claim datasets: reading and checking claim files, importing and exporting them, the synthetic
and fact generators, the template and LLM framers, and the dataset pages."""
