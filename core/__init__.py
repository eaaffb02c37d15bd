"""The few building blocks every tsunagu package shares: the clock, the error tree and rate limits.

Nothing here knows about meetings, the web or the database; ``media`` may import it too.
"""
