"""errors.py: how an error reads in a log line, a command's output and /health."""

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pymemcache.exceptions import MemcacheUnexpectedCloseError

from {{ cookiecutter.package_name }}.cache.errors import MAX_MESSAGE, format_error

NO_MESSAGE = "(no message)"  # what errors.py says when neither the error nor its docstring does
SECRET_LETTERS = "ghijklmnopqrstvwyzGHIJKLMNOPQRSTVWYZ"  # no backslash escape makes these


CLOSED = "MemcacheUnexpectedCloseError"
STALLS = "Raised when the server stalls.\n\nMore."


@pytest.mark.parametrize(
    "error, shown",
    [
        # pymemcache raises it without a message when memcached closes the connection.
        (MemcacheUnexpectedCloseError(), f"{CLOSED}: the server closed the connection"),
        (MemcacheUnexpectedCloseError("by 127.0.0.1"), f"{CLOSED}: by 127.0.0.1"),
        (TimeoutError(), f"TimeoutError: {NO_MESSAGE}"),  # not "Timeout expired." nor a blank
        (ConnectionResetError(" \n"), f"ConnectionResetError: {NO_MESSAGE}"),
        (type("Stalled", (Exception,), {})(), f"Stalled: {NO_MESSAGE}"),
        (type("Stalled", (Exception,), {"__doc__": STALLS})(), "Stalled: the server stalls"),
    ],
)
def test_an_error_without_a_message_says_what_happened(error, shown):
    assert format_error(error, []) == shown


# Any exception class a library may raise without a message (its docstring anything, or none,
# a secret in it even): a type, ": ", then one bounded printable line that says something.
@settings(max_examples=100, deadline=None, derandomize=True)
@example(doc=None, blank=" ", module="redis.exceptions", secret="hunterghij")
@example(doc="\n\n  \t", blank="", module="pymemcache.exceptions", secret="hunterghij")
@example(doc="Raised when ", blank="", module="app", secret="hunterghij")
@example(doc="Raised when hunterghij fails.", blank="", module="app", secret="hunterghij")
@given(
    doc=st.none() | st.text(max_size=400),
    blank=st.sampled_from(["", " ", "\n", "\t \r\n"]),
    module=st.sampled_from(["builtins", "pymemcache.exceptions", "redis.exceptions", "app"]),
    secret=st.text(st.sampled_from(SECRET_LETTERS), min_size=8, max_size=40),
)
def test_an_error_never_shows_an_empty_message(doc, blank, module, secret):
    kind = type("Silent", (Exception,), {"__doc__": doc, "__module__": module})
    shown = format_error(kind(blank), [secret])
    assert shown.startswith("Silent: ")
    message = shown.removeprefix("Silent: ")
    assert message.strip(), repr(shown)
    assert message.isascii() and message.isprintable(), repr(shown)
    assert len(message) <= MAX_MESSAGE + len("...")
    assert secret not in message
