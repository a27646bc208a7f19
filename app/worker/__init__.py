"""The background worker (``alliance worker``): processes referral batches and runs the periodic jobs."""
