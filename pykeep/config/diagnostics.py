"""Diagnostics: what keepalived's ``report_config_error`` says, plus what to write instead.

keepalived keeps only the *worst* error level seen (lib/parser.c
``vreport_config_error``) and maps it to the exit code of ``-t``
(core/main.c ``config_test_exit``).  ``Severity`` mirrors its ``config_err_t``
so the same max-and-map gives the same exit code.
"""

from __future__ import annotations

from enum import IntEnum

from pykeep.config.model import Loc, frozen_dataclass


class Severity(IntEnum):
    """keepalived's ``config_err_t`` (lib/parser.h), in its order: higher is worse."""

    OK = 0
    FILE_NOT_FOUND = 1
    BAD_IF = 2
    FATAL = 3
    MULTIPLE_FILES = 4
    UNKNOWN_KEYWORD = 5
    UNEXPECTED_BOB = 6
    MISSING_BOB = 7
    UNEXPECTED_EOB = 8
    MISSING_EOB = 9
    UNMATCHED_QUOTE = 10
    MISSING_PARAMETER = 11
    INVALID_NUMBER = 12
    GENERAL_ERROR = 13
    WARNING = 14
    DEPRECATED = 15
    SECURITY_ERROR = 16
    # Not a keepalived level: our own advice that does not change the verdict.
    INFO = -1


# keepalived's KEEPALIVED_CHK_EXIT_* (lib/scheduler.h).
EXIT_OK = 0
EXIT_MISSING_PARAMETER = 2  # KEEPALIVED_EXIT_CONFIG: parser.c null_strvec exits at once
EXIT_CONFIG = 4
EXIT_CONFIG_TEST = 5
EXIT_CONFIG_TEST_SECURITY = 6
# KEEPALIVED_EXIT_NO_CONFIG: an includer-style include failed (main.c had_config_file_error).
EXIT_NO_CONFIG = 6


def exit_code_for(worst: Severity) -> int:
    """The exit code ``keepalived -t`` gives for the worst error level (main.c config_test_exit)."""
    if worst <= Severity.OK:
        return EXIT_OK
    if worst in (Severity.FILE_NOT_FOUND, Severity.BAD_IF, Severity.FATAL):
        return EXIT_CONFIG
    if worst == Severity.SECURITY_ERROR:
        return EXIT_CONFIG_TEST_SECURITY
    return EXIT_CONFIG_TEST


@frozen_dataclass
class Diagnostic:
    """One message of the config test, where it happened, and how to fix it."""

    loc: Loc | None
    severity: Severity
    message: str
    hint: str | None = None
    # Shown with its file even at line 0: keepalived names an included file
    # in every message (lib/parser.c vreport_config_error), and the pieces of
    # a long first line carry line 0 (see lexer._fgets_lines).
    named: bool = False

    def __str__(self) -> str:
        if self.loc is not None and (self.loc.line > 0 or self.named):
            text = f"({self.loc.file}: Line {self.loc.line}) {self.message}"
        else:
            text = self.message
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text
