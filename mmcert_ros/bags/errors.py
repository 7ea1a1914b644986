"""Errors of the bag layer; each message names the bag path it is about."""
from __future__ import annotations


class BagError(ValueError):
    """A bag cannot be opened, read or written (missing, corrupt, unsupported, exists)."""


class MissingTopicError(BagError):
    """A requested topic is not in the bag; the message lists the topics the bag has."""
