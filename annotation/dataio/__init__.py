"""Research data in and out: the tidy judgment table (CSV, JSON Lines, Parquet), export jobs and
their pages, and the import of Prolific's annotation results."""
