"""The project's exception tree.

Every error the tool raises on purpose derives from :class:`LlmPerfOptError`.  The CLI and the
HTTP service print a :class:`UserError` as one line (what was wrong, what was expected, how to
fix it) and never a traceback; anything else is a bug and keeps its traceback.

::

    LlmPerfOptError
    +-- UserError                  bad input from a person: a flag, a file, an id (CLI exit 1)
    |   +-- ContractError          a payload that does not structure into a contract class (.path)
    |   +-- UnknownIdError         an id (device, workload, mode, model, report) that is not known
    |   +-- WorkloadError          a workload that cannot exist (page size, seq_len mismatch, ...)
    |   +-- ConfigError            a model config that is missing a key or holds a bad value
    |   +-- TrustError             remote code that was not explicitly trusted
    +-- ReportValidationError      a report that breaks the report validation rules (.problems)
    +-- TraceError                 the tracer met something it cannot account for
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "ConfigError",
    "ContractError",
    "LlmPerfOptError",
    "ReportValidationError",
    "TraceError",
    "TrustError",
    "UnknownIdError",
    "UserError",
    "WorkloadError",
]


class LlmPerfOptError(Exception):
    """Root of every error this package raises on purpose."""


class UserError(LlmPerfOptError):
    """A person's mistake: printed as one line by the CLI, exit code 1."""


class ContractError(UserError):
    """A payload that does not structure into a contract class; the message carries the JSON path.

    ``path`` is the JSON path of the first problem (``$`` for the whole payload), for HTTP error bodies.
    """

    def __init__(self, message: str, *, path: str = "$") -> None:
        self.path = path
        super().__init__(message)


class UnknownIdError(UserError):
    """An identifier that is not known; the message lists the known ones."""

    def __init__(self, kind: str, value: str, known: Iterable[str]) -> None:
        self.kind = kind
        self.value = value
        self.known = sorted(known)
        super().__init__(f"unknown {kind} {value!r}; expected one of: {', '.join(self.known)}")


class WorkloadError(UserError):
    """A workload that cannot exist."""


class ConfigError(UserError):
    """A model configuration that is missing a key or holds a bad value."""


class TrustError(UserError):
    """Remote code that would run without ``--trust-remote-code``."""


class ReportValidationError(LlmPerfOptError):
    """A report that breaks the validation rules; ``problems`` lists every rule it breaks."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        head = self.problems[0] if self.problems else "invalid report"
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        super().__init__(f"invalid report: {head}{more}")


class TraceError(LlmPerfOptError):
    """The tracer met something it cannot account for."""
