"""Errors tunelab reports to the user as a message, not a traceback."""


class TunelabError(Exception):
    """Base of the errors whose message says what is wrong and what would fix it."""
