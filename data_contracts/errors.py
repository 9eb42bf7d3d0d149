"""Typed errors of the data_contracts package. Each message says what was found and what was expected."""
from __future__ import annotations


class ContractError(Exception):
    """Base of every error raised by the data_contracts package."""


class ContractDefinitionError(ContractError):
    """A contract YAML file holds a quality rule this package cannot read (a bug in the contract, not the data)."""


class ValidationParameterError(ContractError, ValueError):
    """validate_extract was called with inconsistent parameters (e.g. an as_of after the extraction time)."""


class ContractViolation(ContractError):
    """An extract broke at least one error-severity rule; the message lists each failed rule on one line."""

    def __init__(self, message: str, failed_rules: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.failed_rules = failed_rules
