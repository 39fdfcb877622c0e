"""Errors as a log line, a command or /health may show them: the one place they are formatted.

One line of printable ASCII, bounded, every secret (and for /health, every host name) replaced by
***, never by repr (a UnicodeEncodeError's repr quotes the whole header, a token included). An
error raised without a message (pymemcache's MemcacheUnexpectedCloseError() when memcached goes
away) says what it means all the same.
"""

import re
from collections.abc import Iterable

MAX_MESSAGE = 300  # characters of an error message in a log line or in status()
_PIPELINE_COMMAND = re.compile(r"\(.*\) of pipeline", re.DOTALL)
# A Redis error starts with its code (ERR, READONLY); redis-py keeps it out of the message,
# Upstash's REST API keeps it in.
_ERROR_CODE = re.compile(r"[A-Z]+ ")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# What an error raised without a message means, by type name, where its docstring says it less
# plainly (pymemcache 4: "Raised when the connection with memcached closes unexpectedly.").
UNSAID = {"MemcacheUnexpectedCloseError": "the server closed the connection"}
NO_MESSAGE = "(no message)"


def format_error(error: BaseException, secrets: Iterable[str]) -> str:
    """``error`` as a log line, status() or a command shows it: type, message, secrets ***."""
    return f"{type(error).__name__}: {error_message(error, secrets)}"


def advised(said: str, advice: str) -> str:
    """An error as formatted, and what to do about it, if the backend knows (Backend.advice)."""
    return f"{said.rstrip('.')}: {advice}" if advice else said


def error_message(error: BaseException, hidden: Iterable[str]) -> str:
    """``error``'s message, each of ``hidden`` (secrets; for /health, host names too) replaced
    by ***: one line of printable ASCII, at most MAX_MESSAGE characters and "..."."""
    said = str(error)
    if not said.strip():
        said = unsaid(error)
    # redis-py quotes a failed pipeline command with its arguments: the stored value.
    message = _PIPELINE_COMMAND.sub("(...) of pipeline", scrub(said, hidden))
    message = " ".join(message.split())  # line breaks, tabs and runs of spaces: one space
    message = message.encode("ascii", "backslashreplace").decode()
    message = _CONTROL.sub(lambda found: f"\\x{ord(found.group()):02x}", message)
    return message[:MAX_MESSAGE] + "..." if len(message) > MAX_MESSAGE else message


def unsaid(error: BaseException) -> str:
    """What an error raised without a message means: UNSAID's words for its type, or the first
    sentence of its class's own docstring ("Raised when " dropped), or NO_MESSAGE. Python's own
    exceptions' docstrings describe the class ("Common base class for ..."), not what happened:
    their type says it."""
    kind = type(error)
    if kind.__name__ in UNSAID:
        return UNSAID[kind.__name__]
    doc = kind.__doc__ if kind.__module__ != "builtins" else None  # not inherited: its own
    first = " ".join((doc or "").strip().split("\n\n")[0].split())
    first = first.split(". ")[0].removesuffix(".")
    if first[:12].lower() == "raised when ":
        first = first[12:]
    return first if first.strip() else NO_MESSAGE


def says(message: str, starts: tuple[str, ...]) -> bool:
    """Whether an error ``message`` starts with one of ``starts``, after its Redis error code if
    it has one ("ERR max requests limit exceeded" as over REST, or without "ERR " as redis-py
    raises it)."""
    code = _ERROR_CODE.match(message)
    return message[code.end() if code else 0 :].startswith(starts)


def scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):  # longest first
        text = text.replace(secret, "***")
    return text
