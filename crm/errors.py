"""Typed errors raised at the CRM edge. Each message says what was found, what was expected and what to do."""
from __future__ import annotations


class CrmError(Exception):
    """Base of every error raised by the crm package."""


class ExtractNotFoundError(CrmError):
    pass


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
