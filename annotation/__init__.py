"""The annotation side of FrameLab: claim datasets, human studies and what comes out of them.

Subpackages, one per researcher action: `claims` (datasets, claim files, framers,
generators), `studies` (design, participants' and researchers' study pages), `dataio` (the
tidy judgment table, exports, Prolific imports), `analysis` (statistics, the report, the
human profile) and `api` (the REST API). What they share sits at the top: the tables
(`models`), the Celery tasks (`tasks`), the admin and the page URLs.
"""
