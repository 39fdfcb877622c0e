"""Every list of cache backends agrees with the registry: BACKENDS in the baked cache package.

Checked against it: cookiecutter.json's choices and prompts, the hooks' tables, the client
requirements, .env.example, and every list of backends in the docs and pages. A paragraph, list
item or table row that names two or more backends is a list: it must name all of them, or be one
of the partial lists declared in PARTIAL with the registry attribute that picks its members, so
that a new backend with that attribute must join it too.
"""

import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest

from .conftest import CHOICES, COOKIECUTTER_JSON, TEMPLATE
from .test_hooks import post_gen

BACKEND_ATTRIBUTES = ("requires", "shared", "needs_paid_account", "offered", "tracks", "variables")
# Backend names that are also English words: in prose they count only when written as code.
ENGLISH = {"simple", "null"}
CODE = re.compile(r"`[^`\n]*`|<code>[^<]*</code>")

# Partial lists, by (file, words in the block): the registry attribute that picks their members.
PARTIAL: dict[tuple[str, str], Callable[[dict], bool]] = {
    # Backends that need no network: what a free account can always use.
    ("docs/upstash.md", "or stay on `simple` or"): lambda b: b["requires"] is None and b["offered"],
    # What clear() does on each shared backend.
    ("docs/caching.md", "`clear()` removes this app's entries only"): lambda b: b["shared"],
    # The near cache: the shared backends whose server cannot report changes, and those with no server.
    ("docs/caching.md", "off unless `CACHE_NEAR_TTL` > 0"): lambda b: b["shared"] and not b["tracks"],
    ("docs/caching.md", "| not needed |"): lambda b: not b["shared"],
}


@pytest.fixture(scope="module")
def registry(bake) -> dict[str, dict]:
    """BACKENDS of a default bake: each backend's name and attributes, in registry order."""
    project = bake()
    code = (
        "import json; from my_flask_app.cache import BACKENDS; print(json.dumps({name: {a: "
        f"getattr(b, a) for a in {BACKEND_ATTRIBUTES!r}}} for name, b in BACKENDS.items()}}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=project, capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def documents(bake) -> dict[str, str]:
    """The docs and pages a user reads: the template's README and the baked project's."""
    project = bake()
    paths = [project / "README.md", project / ".env.example", *project.glob("requirements*.txt")]
    paths += [*(project / "docs").glob("*.md"), *(project / project.name / "templates").glob("*.html")]
    found = {str(path.relative_to(project)): path.read_text() for path in paths}
    found["template README.md"] = (TEMPLATE / "README.md").read_text()
    return found


def offered(registry: dict[str, dict]) -> list[str]:
    return [name for name, backend in registry.items() if backend["offered"]]


def test_the_answers_are_the_offered_backends(registry):
    assert CHOICES["cache_backend"] == offered(registry)
    prompts = COOKIECUTTER_JSON["__prompts__"]["cache_backend"]
    assert [key for key in prompts if key != "__prompt__"] == offered(registry)


def test_the_hooks_table_has_a_row_per_offered_backend(registry):
    assert list(post_gen.BACKENDS) == offered(registry)
    for name in offered(registry):
        row, backend = post_gen.BACKENDS[name], registry[name]
        client = (row["requirement"] or "").partition(">")[0].partition("=")[0] or None
        assert client == backend["requires"], name
        says_paid = "paid PythonAnywhere account" in row["next_steps"]
        assert says_paid == backend["needs_paid_account"], name


def test_every_client_is_a_dev_requirement_of_the_baked_project(bake):
    dev = (bake() / "requirements-dev.txt").read_text().splitlines()
    for row in post_gen.BACKENDS.values():
        assert row["requirement"] is None or row["requirement"] in dev


# A cache client's requirement line, as a page or requirements file writes it: redis>=8.0,<9.
CLIENT_REQUIREMENT = re.compile(
    r"(?<![\w-])(?:redis|pymemcache|requests)[<>=!~]=?[0-9][\w.*]*(?:,[<>=!~]=?[0-9][\w.*]*)*"
)


def test_every_client_requirement_a_page_writes_is_the_one_the_bake_writes(documents):
    lines = {row["requirement"] for row in post_gen.BACKENDS.values()} - {None}
    written = [
        (document, found)
        for document, text in documents.items()
        for found in CLIENT_REQUIREMENT.findall(text)
    ]
    assert {found for _, found in written} >= lines  # requirements-dev.txt has each, at least
    assert [(document, found) for document, found in written if found not in lines] == []


def test_env_example_documents_every_backend_and_setting(registry, documents):
    example = documents[".env.example"]
    for name, backend in registry.items():
        assert re.search(rf"^#\s+{name}\s", example, flags=re.M), f"CACHE_TYPE={name} is not described"
        for variable in backend["variables"]:
            assert re.search(rf"^{variable}=", example, flags=re.M), variable


def test_caching_docs_have_a_row_per_backend(registry, documents):
    rows = re.findall(r"^\| `([a-z]+)` \|", documents["docs/caching.md"], flags=re.M)
    assert rows == list(registry)


def blocks(text: str) -> Iterator[str]:
    """Paragraphs, with each list item and table row a block of its own."""
    block: list[str] = []
    for line in [*text.splitlines(), ""]:
        starts_item = re.match(r"\s*(?:[-*|]|\d+\.)\s", line)
        if not line.strip(" #") or starts_item:
            if block:
                yield "\n".join(block)
            block = []
        if line.strip(" #"):
            block.append(line)


def named(block: str, names: list[str]) -> tuple[set[str], set[str]]:
    """The backends a block names, and those of them it names as code."""
    pattern = re.compile(rf"(?<![\w./-])({'|'.join(names)})(?![\w-]|://|\.\w)")
    in_code = {m.group(1) for span in CODE.findall(block) for m in pattern.finditer(span)}
    in_prose = {m.group(1) for m in pattern.finditer(CODE.sub(" ", block))} - ENGLISH
    return in_code | in_prose, in_code


def lists_that_disagree(documents: dict[str, str], registry: dict[str, dict]) -> Iterator[str]:
    names = list(registry)
    complete = [set(names), set(offered(registry))]
    for document, text in documents.items():
        for block in blocks(text):
            found, in_code = named(block, names)
            if len(found) < 2:
                continue
            declared = [
                picks for (where, words), picks in PARTIAL.items() if where == document and words in block
            ]
            allowed = [{n for n, b in registry.items() if picks(b)} for picks in declared] or complete
            # What a list of ``members`` shows: English-word names only when written as code.
            if not any(
                found == {n for n in members if n not in ENGLISH or n in in_code} for members in allowed
            ):
                yield f"{document}: {sorted(found)} in {block.strip()[:160]!r}"


def unused_partial_lists(documents: dict[str, str]) -> list[tuple[str, str]]:
    return [(where, words) for where, words in PARTIAL if words not in documents.get(where, "")]


def test_every_list_of_backends_in_the_docs_and_pages_is_complete(documents, registry):
    assert list(lists_that_disagree(documents, registry)) == []
    assert unused_partial_lists(documents) == [], "PARTIAL names a list that is gone"


def test_a_stale_list_is_caught(registry):
    """The checker itself: each kind of stale list found in the docs before this test existed."""
    stale = {  # the baked README's intro and its example error, the /example page, ...
        "README.md": "in-process (`simple`), files (`filesystem`), Redis (`redis`) or "
        "memcached (`memcached`).",
        "error": "`ConfigError: CACHE_TYPE='redsi' is not valid: use one of simple, filesystem, "
        "redis, memcached, null`",
        "page.html": "<p>With a shared backend (filesystem, redis,\n   memcached) every worker.</p>",
        "requirements.txt": "# The cache client for CACHE_TYPE=redis (redis) or memcached (pymemcache)",
        "deploy.md": "3. checks `.env`: a redis or memcached backend points at a real server",
        ".env.example": "# Put in front of every key in redis and memcached, so apps keep apart.",
    }
    assert len(list(lists_that_disagree(stale, registry))) == len(stale)
    fine = {"a": "`simple`, `filesystem`, `redis`, `memcached`, `upstash` or `null`", "b": "one `redis` here"}
    assert list(lists_that_disagree(fine, registry)) == []
