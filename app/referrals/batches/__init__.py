"""Batch submission of referrals: a CSV or JSON Lines upload of up to 100,000 referrals, spooled while it
streams in (``files``: no database connection is held meanwhile), staged encrypted in one transaction, then
validated and attributed chunk by chunk through the same code path as a single submission.

Exactly once: processing a chunk is one transaction that deletes the staged chunk, attributes its lines, writes
one result per line and bumps the batch's counters. A crash anywhere leaves either all of it or none of it, so a
rerun resumes from the chunks still staged, without losses or duplicates. Results hold no personal data and are
kept; staged chunks (encrypted personal data) live only until they are processed.

The package: ``models`` (the three tables), ``errors``, ``files`` (reading the upload), ``lines`` (one line
validated), ``intake`` (receiving and staging), ``processing`` (chunks to attribution), ``results`` (progress and
results), ``router`` (HTTP).
"""
