"""Static files' URLs carry ?v=<a hash of the file> (pages.py): deploy.py lets browsers keep
/static/ files for a year, so a file that changes must get a new URL."""

import os
import re
import shutil
from pathlib import Path

import pytest
from flask import url_for
from hypothesis import example, given
from hypothesis import strategies as st

from .conftest import make_app
from .hostile import PROPERTY

STYLESHEET = re.compile(r'<link rel="stylesheet" href="([^"]+)"')
VERSIONED = re.compile(r"/static/(?P<name>[^?]+)\?v=(?P<version>[0-9a-f]{8})")


@pytest.fixture
def site(tmp_path) -> tuple:
    """The app with its own copy of the project's static folder, which a test may change."""
    app = make_app(tmp_path)
    static = tmp_path / "static"
    shutil.copytree(app.static_folder, static)
    app.static_folder = str(static)
    return app, static


def stylesheet(app) -> str:
    """The stylesheet's URL on a page in the site's layout."""
    page = app.test_client().get("/sample/plain").get_data(as_text=True)
    return STYLESHEET.search(page).group(1)


def test_the_stylesheet_url_carries_a_version_and_serves_the_file(site):
    app, static = site
    url = stylesheet(app)
    assert VERSIONED.fullmatch(url) and url.startswith("/static/style.css?v="), url
    response = app.test_client().get(url)
    assert response.status_code == 200 and response.mimetype == "text/css"
    assert response.get_data() == (static / "style.css").read_bytes()


def changed(path: Path, old: str, new: str, mtime_ns: int) -> None:
    """``path`` with ``old`` replaced by ``new`` (of the same length) and its mtime set."""
    assert len(old) == len(new)
    path.write_text(path.read_text().replace(old, new, 1))
    os.utime(path, ns=(mtime_ns, mtime_ns))


def test_the_version_changes_when_the_file_does(site):
    app, static = site
    css = static / "style.css"
    before, mtime = stylesheet(app), css.stat().st_mtime_ns
    # The same size, a later mtime (set: a filesystem may count whole seconds).
    changed(css, "--ink: #1f2933", "--ink: #000000", mtime + 10**9)
    after = stylesheet(app)
    assert after != before and VERSIONED.fullmatch(after), (before, after)
    assert app.test_client().get(after).get_data() == css.read_bytes()


def test_a_file_is_read_once_while_its_mtime_and_size_stay(site):
    """Building a URL costs a stat, not a read: a file changed behind its mtime's back (never by
    an editor, git or an upload) keeps its version until its mtime changes."""
    app, static = site
    css = static / "style.css"
    before, mtime = stylesheet(app), css.stat().st_mtime_ns
    changed(css, "--ink: #1f2933", "--ink: #000000", mtime)
    assert stylesheet(app) == before
    os.utime(css, ns=(mtime + 10**9, mtime + 10**9))
    assert stylesheet(app) != before


def test_only_files_in_the_static_folder_get_a_version(site):
    app, static = site
    (static / "sub").mkdir()
    (static / "sub" / "app.js").write_text("console.log(1)\n")
    with app.test_request_context():
        assert VERSIONED.fullmatch(url_for("static", filename="sub/app.js"))
        # Missing, a folder, outside it: the plain URL, no error.
        assert url_for("static", filename="missing.css") == "/static/missing.css"
        assert url_for("static", filename="sub") == "/static/sub"
        assert url_for("static", filename="../conftest.py") == "/static/../conftest.py"
        assert url_for("static", filename="style.css", v="mine") == "/static/style.css?v=mine"


@PROPERTY
@example(name="style.css")
@example(name="/etc/passwd")
@example(name="../../" * 10 + "etc/passwd")
@example(name="style.css\x00")
@example(name="style.css/")
@given(name=st.sampled_from(["style.css", "favicon.svg", "./style.css"]) | st.text(max_size=20))
def test_any_filename_builds_a_url_and_a_version_only_for_a_file_it_serves(site, name):
    """Whatever a template passes as the filename: a URL, never an error; a version exactly for
    the files of the folder, and the versioned URL serves that file."""
    app, static = site
    with app.test_request_context():
        url = url_for("static", filename=name)
    versioned = VERSIONED.fullmatch(url)
    if os.path.normpath(name) in ("style.css", "favicon.svg"):
        assert versioned, url
    if versioned:
        response = app.test_client().get(url)
        assert response.status_code == 200, url
        assert response.get_data() == (static / os.path.normpath(name)).read_bytes()
