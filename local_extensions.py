"""Jinja filters that write an answer into the baked code as a string literal that reads back exactly,
and a global that tells the post-gen hook whether cruft is rendering for a diff.

Jinja's ``tojson`` writes every non-ASCII character as ``\\uXXXX`` and one outside the BMP (an
emoji) as a surrogate pair, which Python reads as two lone surrogates (the page then cannot be
encoded: a 500) and TOML refuses. These keep every character as it is, escaping only the quote,
the backslash, and what would break the line (control characters, line and paragraph separators;
the pre-gen hook refuses those in answers anyway). Cookiecutter and cruft load them from
``_extensions`` in cookiecutter.json (the template's root is on sys.path while they bake).
"""

import inspect
import logging
import unicodedata

from jinja2.ext import Extension

LINE_BREAKING = {"Cc", "Cs", "Zl", "Zp"}


def _quoted(value: str, quote: str, escape) -> str:
    out = []
    for char in value:
        if char in ("\\", quote):
            out.append("\\" + char)
        elif unicodedata.category(char) in LINE_BREAKING:
            out.append(escape(char))
        else:
            out.append(char)
    return quote + "".join(out) + quote


def python_string(value: str) -> str:
    """A Python str literal, quoted as ``ruff format`` quotes it: double quotes unless the text
    holds more double quotes than single ones."""
    value = str(value)
    quote = "'" if value.count('"') > value.count("'") else '"'
    return _quoted(value, quote, lambda char: repr(char)[1:-1])


def toml_string(value: str) -> str:
    """A TOML basic string (always double-quoted; TOML escapes are \\uXXXX and \\UXXXXXXXX)."""
    return _quoted(
        str(value), '"', lambda char: f"\\u{ord(char):04x}" if ord(char) <= 0xFFFF else f"\\U{ord(char):08x}"
    )


# The module of cruft whose cookiecutter_template() renders the template into a temporary directory
# for `cruft update` (the old and the new template, to diff them) and `cruft diff`.
CRUFT_DIFF_RENDER = "cruft._commands.utils.generate"


def for_cruft_diff() -> bool:
    """Whether this render is one of cruft's own, in a temporary directory, to diff templates
    (not a bake the user sees): cruft calls cookiecutter in-process, so its frame is on the stack
    (pinned by tests/test_cruft.py)."""
    frame = inspect.currentframe()
    while frame is not None:
        if frame.f_globals.get("__name__") == CRUFT_DIFF_RENDER:
            return True
        frame = frame.f_back
    return False


def without_traceback(record: logging.LogRecord) -> bool:
    """Drop the traceback cookiecutter logs when a hook fails: it shows only cookiecutter's own
    calls, after the hook has said why it refused (cookiecutter then prints the exception's line)."""
    if record.exc_info and type(record.exc_info[1]).__name__ == "FailedHookException":
        record.exc_info = None
        record.exc_text = None
    return True


class StringLiterals(Extension):
    """``{{ answer | python_string }}`` and ``{{ answer | toml_string }}`` in the template, and
    ``{{ for_cruft_diff() }}`` for the post-gen hook."""

    def __init__(self, environment):
        super().__init__(environment)
        environment.filters.update(python_string=python_string, toml_string=toml_string)
        environment.globals.update(for_cruft_diff=for_cruft_diff)
        # cookiecutter loads this before any hook runs, in its own process; addFilter adds it once.
        logging.getLogger("cookiecutter.hooks").addFilter(without_traceback)
