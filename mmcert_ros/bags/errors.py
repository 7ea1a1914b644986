"""Errors of the bag layer; each message names the bag path it is about."""
from __future__ import annotations

from mmcert_ros.errors import UserError


class BagError(UserError):
    """A bag cannot be opened, read or written (missing, corrupt, unsupported, exists)."""


class BagNotFoundError(BagError, FileNotFoundError):
    """The bag path does not exist (also a ``FileNotFoundError``)."""


class MissingTopicError(BagError):
    """A requested topic is not in the bag; the message lists the topics the bag has."""
