"""Typed errors raised at the CRM edge. Each message says what was found, what was expected and what to do."""
from __future__ import annotations


class CrmError(Exception):
    """Base of every error raised by the crm package."""


class ExtractNotFoundError(CrmError):
    pass


class CrmNotFoundError(ExtractNotFoundError):
    """The CRM location does not exist or cannot be opened (readers never create it)."""


class NoScoresError(CrmError):
    """The CRM holds no scores (of the model asked for) yet."""


class RecordNotFoundError(CrmError):
    """No account or lead with that id, or no score was ever written for it."""


class MissingTableError(CrmError):
    pass


class MissingColumnsError(CrmError):
    pass


class ColumnTypeError(CrmError):
    pass


class WriteBackError(CrmError):
    pass


class ScoringInProgressError(WriteBackError):
    pass


class UnknownSegmentError(CrmError):
    """A segment (or lead source) that no record of the CRM has."""


class BucketError(CrmError):
    """A bucketed extract that cannot be written or read (bad bucket count, missing key, files not as the manifest)."""
