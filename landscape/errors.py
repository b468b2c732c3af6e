"""The one exception type that every user-caused error in `landscape` raises."""

from __future__ import annotations


class LandscapeError(Exception):
    """A problem the user can fix: bad input, missing data, a mismatched checkpoint.

    The message always says what went wrong and what to do about it.
    """
