"""Finish the baked project: .env with a fresh secret, the cache client, the answers, next steps.

What each cache_backend answer changes is the BACKENDS table below and nothing else: its client
requirement, its next steps, and the settings it starts with (``env``: filled into .env.example,
then .env is made from it). Running this again on the same project (as cruft does) changes
nothing: .env is never overwritten, and .env.example, the requirement line and the answers file
are written only when they differ. No network, no tools.
"""

import json
import re
import secrets
import sys
from pathlib import Path

# What each cache_backend answer changes in the baked project.
BACKENDS = {
    "simple": {
        "requirement": None,
        "env": {},
        "next_steps": "The simple cache needs no server and works on free accounts. Each web "
        "worker keeps its own copy; see docs/caching.md for when to move on.",
    },
    "filesystem": {
        "requirement": None,
        "env": {},
        "next_steps": "The filesystem cache writes to instance/cache (or CACHE_DIR in .env), "
        "shared by all web workers; it counts against your disk quota (CACHE_THRESHOLD caps it).",
    },
    "redis": {
        "requirement": "redis>=8.0,<9",
        "env": {},
        "next_steps": "Set REDIS_URL in .env to your hosted Redis, in the form it serves: Upstash "
        "rediss://default:PASSWORD@HOST.upstash.io:6379, Redis Cloud's free plan (no TLS) "
        "redis://default:PASSWORD@HOST:PORT (docs/caching.md, Hosted Redis). Outbound Redis "
        "connections need a paid PythonAnywhere account (free accounts: docs/upstash.md).",
    },
    "memcached": {
        "requirement": "pymemcache>=4.0,<5",
        "env": {},
        "next_steps": "Set MEMCACHED_SERVERS in .env to your memcached host:port list; for "
        "MemCachier also MEMCACHED_USERNAME, MEMCACHED_PASSWORD, MEMCACHED_TLS=on and "
        "MEMCACHED_TLS_CA (docs/caching.md). Outbound memcached connections need a paid "
        "PythonAnywhere account (free accounts: docs/upstash.md).",
    },
    "upstash": {
        "requirement": "requests>=2.31,<3",
        # Each read is a command counted against Upstash's monthly quota (500K on the free tier),
        # and a free account's one web worker sees its own changes at once: 30 s bounds a busy
        # page's cost by time, not traffic (docs/upstash.md has the figures).
        "env": {"CACHE_NEAR_TTL": "30"},
        "next_steps": "Set UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN in .env from your "
        "database's REST API section on console.upstash.com. Upstash over HTTPS is the way for "
        "free accounts, if Upstash is on PythonAnywhere's allowlist: docs/upstash.md says how to check.",
    },
}

# Answers kept in the baked project (.cookiecutter.json); never secrets, never local paths.
KEPT_ANSWERS = (
    "project_name", "project_slug", "package_name", "description", "author_name",
    "pythonanywhere_username", "pythonanywhere_region", "python_version", "cache_backend",
    "_template",
)  # fmt: skip


def env_from_example(example: str, values: dict[str, str]) -> str:
    """.env.example with the NAME= line of each of ``values`` filled in."""
    for name, value in values.items():
        example, count = re.subn(rf"^{name}=.*$", f"{name}={value}", example, flags=re.M)
        if count != 1:
            sys.exit(f"template error: .env.example must have exactly one {name}= line")
    return example


def add_requirement(text: str, requirement: str | None) -> str:
    if requirement is None or requirement in text.splitlines():
        return text
    return f"{text.rstrip()}\n# The client for the cache backend chosen at bake time.\n{requirement}\n"


def write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def site_domain(answers: dict) -> str:
    region = ".eu" if answers["pythonanywhere_region"] == "eu" else ""
    return f"{answers['pythonanywhere_username'].lower()}{region}.pythonanywhere.com"


# cookiecutter.json's default pythonanywhere_username: a placeholder, not an account.
PLACEHOLDER_USERNAME = "yourname"


def cache_type_in(env_text: str) -> str:
    """The CACHE_TYPE an existing .env sets ("" when none), read as python-dotenv reads it in the
    usual forms: bare (an inline comment after a space), or in quotes."""
    found = re.findall(r"^[ \t]*(?:export[ \t]+)?CACHE_TYPE[ \t]*=(.*)$", env_text, flags=re.M)
    value = found[-1] if found else ""
    quoted = re.match(r"""\s*(['"])(.*?)\1""", value)
    return (quoted.group(2) if quoted else re.split(r"\s#", value)[0]).strip()


def warnings(answers: dict, kept_env: str | None) -> list[str]:
    """What the user must know before the next steps: a .env kept from an earlier bake whose
    CACHE_TYPE is not the answer, and a username left at its placeholder."""
    said = []
    chosen = answers["cache_backend"]
    if kept_env is not None:
        in_force = cache_type_in(kept_env) or "simple"  # the app's default
        shown = in_force if re.fullmatch(r"[a-z]+", in_force) else repr(in_force)
        if in_force == chosen:
            said.append(f".env was kept (it is never overwritten): CACHE_TYPE={shown}.")
        else:
            said.append(
                f"Warning: .env was kept (it is never overwritten) and says CACHE_TYPE={shown}, "
                f"which stays in force: set CACHE_TYPE={chosen} in .env to use the {chosen} cache."
            )
    if answers["pythonanywhere_username"] == PLACEHOLDER_USERNAME:
        said.append(
            f"Warning: pythonanywhere_username is the placeholder {PLACEHOLDER_USERNAME!r}: the "
            "docs and the WSGI file name that user. Bake again with yours "
            "(pythonanywhere_username=<you>); deploy.py warns while they differ."
        )
    return said


def main(answers: dict, project: Path) -> str:
    """Finish ``project``; return the next steps to print."""
    backend = BACKENDS[answers["cache_backend"]]
    env = project / ".env"
    kept_env = env.read_text(errors="replace") if env.exists() else None
    # .env.example starts as the bake's .env does: `cp .env.example .env` is the documented fallback.
    example = env_from_example((project / ".env.example").read_text(), backend["env"])
    write_if_changed(project / ".env.example", example)
    if not env.exists():
        values = {"SECRET_KEY": secrets.token_hex(32), "CACHE_TYPE": answers["cache_backend"]}
        env.write_text(env_from_example(example, values))
        env.chmod(0o600)
    requirements = project / "requirements.txt"
    write_if_changed(requirements, add_requirement(requirements.read_text(), backend["requirement"]))
    kept = {key: answers[key] for key in KEPT_ANSWERS if key in answers}
    write_if_changed(project / ".cookiecutter.json", json.dumps(kept, indent=2) + "\n")
    return "\n".join(
        [
            f"Baked {answers['project_slug']} with the {answers['cache_backend']} cache.",
            *warnings(answers, kept_env),
            backend["next_steps"],
            "Next steps:",
            f"  cd {answers['project_slug']}",
            "  python3 -m venv .venv && . .venv/bin/activate && pip install -r requirements-dev.txt",
            "  pytest",
            f"  flask --app {answers['package_name']} run --debug",
            f"Deploy: upload it to PythonAnywhere, then `python3 deploy.py` in a Bash console there "
            f"(docs/deploy.md); the site will be https://{site_domain(answers)}/",
            ".env holds your SECRET_KEY: keep it out of git (it is in .gitignore).",
        ]
    )


if __name__ == "__main__":
    next_steps = main(json.loads(r"""{{ cookiecutter | tojson }}"""), Path.cwd())
    # `cruft update` renders the old and the new template into temporary directories to diff them:
    # those are not the user's project, so no banner (it would show twice in an update). cruft
    # renders both in one process, which imports local_extensions.py once, from the old template:
    # in an update from a release without for_cruft_diff, it is not defined.
    if "{{ for_cruft_diff is defined and for_cruft_diff() }}" != "True":
        print(next_steps)
