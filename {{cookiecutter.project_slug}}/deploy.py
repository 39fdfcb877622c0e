"""Deploy this project to PythonAnywhere, or update it: `python3 deploy.py` in a Bash console.

Run it again after every change; `--dry-run` prints each step and API call and changes nothing.
See docs/deploy.md. It works in two stages:

1. With the console's own Python and only the standard library: check the console (API token,
   region, Python), then create or update the virtualenv ~/.virtualenvs/<project> and install
   requirements-deploy.txt (the app's requirements and pythonanywhere-core) into it.
2. This file again, with the virtualenv's Python: check .env, then create or update the web app
   through PythonAnywhere's API, write its WSGI file, map /static/ (and let browsers keep its
   files for a year), reload, and check /health.
"""

import argparse
import email.utils
import getpass
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional

# The answers this project was baked with.
PROJECT_SLUG = {{ cookiecutter.project_slug | tojson }}
PACKAGE = {{ cookiecutter.package_name | tojson }}
PYTHON_VERSION = {{ cookiecutter.python_version | tojson }}
REGION = {{ cookiecutter.pythonanywhere_region | tojson }}
BAKED_USERNAME = {{ cookiecutter.pythonanywhere_username | tojson }}

# Each PythonAnywhere region: its API host, and the domain its web apps get.
REGIONS = {
    "us": {"api_host": "www.pythonanywhere.com", "domain": "pythonanywhere.com"},
    "eu": {"api_host": "eu.pythonanywhere.com", "domain": "eu.pythonanywhere.com"},
}

PROJECT = Path(__file__).resolve().parent
IN_VIRTUALENV = "DEPLOY_IN_VIRTUALENV"  # set when stage 2 runs
LOCAL_HOSTS = ("localhost", "::1", "0.0.0.0")  # noqa: S104 - names, not a bind address
RATE_LIMIT_TRIES = 4
MAX_WAIT = 60  # seconds; a longer Retry-After is left to the user
UNSAID_WAIT = 5  # seconds to wait on a 429 whose Retry-After says nothing usable
EXCERPT = 160  # characters of an unexpected answer shown: enough to recognise it, never a flood
USERNAME = re.compile(r"[A-Za-z0-9]{1,63}\Z")  # a DNS label in <user>.pythonanywhere.com
# The fields deploy.py reads from the API's answers, and the JSON types they must have.
WEBAPP_FIELDS = {"python_version": (str,), "source_directory": (str, type(None))}
LISTED_FIELDS = {"domain_name": (str,)}  # each web app in GET webapps/
# A web app's Python as its GET reports it: "3.10" (pythonanywhere-core's tests) or "python310"
# (helper_scripts' mocks); the docs do not say which.
PYTHON_FORMS = re.compile(r"(?:python)?([0-9])\.?([0-9]{1,2})\Z")
MAPPING_FIELDS = {"id": (int,), "url": (str,), "path": (str,)}
# Browsers may keep /static/ files for a year without asking again: safe because every static URL
# the app builds carries ?v=<hash of the file> (cache/pages.py), so a changed file gets a new URL.
# The API's static headers are documented only as a table (help_pages, articles/API.md, lines
# 408-425: "POST  Create a new static header. (webapp restart required)  url, name, value"), and
# neither pythonanywhere-core nor helper_scripts calls them: a refusal is one line, not a failure.
STATIC_HEADER = {
    "url": "/static/",
    "name": "Cache-Control",
    # A year; immutable: not asked again even when the visitor reloads the page.
    "value": "public, max-age=31536000, immutable",
}
# Each header in GET static_headers/: the table's "URL, name and value", and an id to PATCH.
HEADER_FIELDS = {"id": (int,), "url": (str,), "name": (str,), "value": (str,)}
HEALTH_FIELDS = {"status": (str,), "cache": (dict,)}


HELP = """\
API_TOKEN: your PythonAnywhere API token, read from the environment (not from .env). Bash
consoles on PythonAnywhere have it once the token exists: create it on the Account page (API
Token tab), then open a new Bash console.

--dry-run checks everything a deployment checks and prints its whole plan; each failed check is
a line starting with "deploy.py:", and the dry run then exits with status 1. See docs/deploy.md."""


class DeployError(Exception):
    """A problem the user can fix; its message says what to do."""


class Refused(DeployError):
    """The API answered and did not do it: a 4xx (401 and 429 are handled before), an error in a
    2xx body, or a 2xx body of another shape than documented. It stops the deployment as any
    DeployError does, except in a step that can do without (set_static_header)."""


class Checks:
    """A deployment stops at its first failed check; a dry run prints each one (as the line a
    deployment would stop with) and goes on with its plan, to fail at the end."""

    def __init__(self, dry_run: bool):
        self.dry_run = dry_run
        self.failed = 0

    def run(self, check, *args):
        """check(*args); None if it failed in a dry run."""
        try:
            return check(*args)
        except DeployError as error:
            if not self.dry_run:
                raise
            print(f"deploy.py: {error}", file=sys.stderr, flush=True)
            self.failed += 1
            return None

    def verdict(self) -> int:
        if not self.failed:
            return 0
        print(f"\nDry run: {self.failed} failed check(s), each on a line starting with "
              '"deploy.py:"; fix them, then run this again', flush=True)  # fmt: skip
        return 1


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="check everything, print the plan, change nothing"
    )
    parser.add_argument(
        "--force", action="store_true", help="take over a web app that serves another folder"
    )
    parser.add_argument(
        "--wait", type=seconds, default=60, help="seconds to wait for /health after the reload"
    )
    # Not for users: the folder standing in for / (its var/www and var/log), for the template's
    # tests against a stand-in for PythonAnywhere.
    parser.add_argument("--root", type=Path, default=Path("/"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        if os.environ.get(IN_VIRTUALENV):
            return deploy(args)
        return bootstrap(args, argv)
    except DeployError as error:
        print(f"deploy.py: {error}", file=sys.stderr)
        return 1


def seconds(text: str) -> float:
    """--wait: a number of seconds a person would wait (nan or inf would wait forever)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds from 0 to 3600")
    return value


def step(text: str) -> None:
    print(f"==> {text}", flush=True)


def say(text: str) -> None:
    print(f"    {text}", flush=True)


# Stage 1: the console's Python, standard library only.


def bootstrap(args: argparse.Namespace, argv: List[str]) -> int:
    checks = Checks(args.dry_run)
    step("Checking this console")
    checks.run(check_token)
    host, name = checks.run(api_host), checks.run(username)
    if host and name:
        say(f"API host {host}, user {name}")
        warn_if_not_the_baked_user(name)
    python = checks.run(console_python)
    checks.run(check_running_python)
    venv = virtualenv()
    requirements = PROJECT / "requirements-deploy.txt"
    if args.dry_run:
        step(f"Virtualenv {venv}")
        doing = "update it" if venv.exists() else f"create it with {python or 'it'}, then"
        say(f"would {doing}: pip install -r {requirements.name}")
        if checks.failed:  # the rest asks the API, as this console's user, with this Python
            step("Then .env, the web app, its WSGI file, /static/, the reload and /health")
            say("planned in detail (each API call) once the checks above pass")
            return checks.verdict()
        with tempfile.TemporaryDirectory() as tools:
            say("installing the deploy tools into a temporary folder, to plan the rest")
            pip = [sys.executable, "-m", "pip", "install", "-q", "--target", tools]
            run([*pip, "-r", str(requirements)])
            return stage_two(sys.executable, argv, PYTHONPATH=tools)
    step(f"Virtualenv {venv}")
    if python_version_of(venv / "bin" / "python") == PYTHON_VERSION:
        say("exists; updating its packages")
    else:
        say(f"creating it with {python}")
        run([python, "-m", "venv", "--clear", str(venv)])
    run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-r", str(requirements)])
    return stage_two(str(venv / "bin" / "python"), argv)


def check_token() -> None:
    if not os.environ.get("API_TOKEN"):
        raise DeployError(
            "API_TOKEN is not set: create a token on the Account page (API Token tab), "
            "then open a new Bash console and run this again"
        )


def console_python() -> str:
    python = shutil.which(f"python{PYTHON_VERSION}")
    if not python:
        raise DeployError(
            f"python{PYTHON_VERSION} is not in this console: PythonAnywhere offers the Pythons of "
            "your account's system image (Account page, System image tab); pick one that has "
            f"{PYTHON_VERSION}, or re-bake the project with another python_version"
        )
    return python


def check_running_python() -> None:
    # The dry run plans with this Python, and pythonanywhere-core needs the project's.
    if sys.version_info[:2] < tuple(int(part) for part in PYTHON_VERSION.split(".")):
        raise DeployError(
            f"this is Python {sys.version_info[0]}.{sys.version_info[1]}, older than the "
            f"project's {PYTHON_VERSION}: run python{PYTHON_VERSION} deploy.py"
        )


def stage_two(python: str, argv: List[str], **env: str) -> int:
    command = [python, str(Path(__file__).resolve()), *argv]
    return subprocess.run(command, env={**os.environ, IN_VIRTUALENV: "1", **env}).returncode  # noqa: S603


def run(command: List[str]) -> None:
    if subprocess.run(command).returncode != 0:  # noqa: S603 - our own fixed commands
        raise DeployError(f"this command failed (its output is above): {' '.join(command)}")


def python_version_of(python: Path) -> Optional[str]:
    if not python.exists():
        return None
    code = "import sys; print('%d.%d' % sys.version_info[:2])"
    found = subprocess.run(  # noqa: S603 - capture_output and text= need 3.7
        [str(python), "-c", code], stdout=subprocess.PIPE, universal_newlines=True
    )
    return found.stdout.strip() or None


def virtualenv() -> Path:
    return Path.home() / ".virtualenvs" / PROJECT_SLUG


def api_host() -> str:
    """The API host of the region this project was baked for; a console on the other one fails."""
    wanted = REGIONS[REGION]["api_host"]
    console = os.environ.get("PYTHONANYWHERE_SITE", "")
    if console and console != wanted:
        hosts = {region["api_host"]: name for name, region in REGIONS.items()}
        if console not in hosts:
            raise DeployError(
                f"PYTHONANYWHERE_SITE={excerpt(console)} is not a PythonAnywhere API host: use "
                f"{' or '.join(hosts)}, or unset it"
            )
        other = hosts[console]
        raise DeployError(
            f"this console is on {console} ({other.upper()}) but the project was baked for "
            f"{wanted} ({REGION.upper()}): re-bake with pythonanywhere_region={other}, or run "
            f"this in a console on {wanted}"
        )
    return wanted


def username() -> str:
    # As pythonanywhere-core finds it: $PYTHONANYWHERE_USERNAME, else the console's user.
    name = os.environ.get("PYTHONANYWHERE_USERNAME")
    if not name:
        try:
            name = getpass.getuser()
        except (KeyError, OSError):  # a user id with no name (a container): say so below
            name = ""
    if not USERNAME.match(name):
        raise DeployError(
            f"the user name {excerpt(name)} (PYTHONANYWHERE_USERNAME, else the console's user) "
            "is not a PythonAnywhere user name (letters and digits): run this in a Bash "
            "console on PythonAnywhere, or set PYTHONANYWHERE_USERNAME to yours"
        )
    return name


def warn_if_not_the_baked_user(name: str) -> None:
    """One line when the console's user is not the one the project was baked for: deploy.py
    serves this user's site, but the docs (and the answers cruft keeps) name the baked one."""
    if name.lower() != BAKED_USERNAME.lower():
        say(
            f"warning: this project was baked for the user {BAKED_USERNAME}, not {name}: "
            f"deploying to {name}'s site; bake again with pythonanywhere_username={name} so "
            "that its docs name your site"
        )


def domain() -> str:
    return f"{username()}.{REGIONS[REGION]['domain']}".lower()


def wsgi_path(root: Path) -> Path:
    return root / "var" / "www" / (domain().replace(".", "_") + "_wsgi.py")


def error_log(root: Path) -> Path:
    return root / "var" / "log" / f"{domain()}.error.log"


def wsgi_source() -> str:
    """pythonanywhere_wsgi.py, pointed at where this project really is."""
    text = (PROJECT / "pythonanywhere_wsgi.py").read_text()
    text, found = re.subn(r"^DEFAULT_HOME = .*$", f"DEFAULT_HOME = {json.dumps(str(PROJECT))}",
                          text, flags=re.M)  # fmt: skip
    if found != 1:
        raise DeployError("pythonanywhere_wsgi.py must have exactly one DEFAULT_HOME = line")
    return text


# Stage 2: the virtualenv's Python (or, for --dry-run, the console's with a temporary folder).


def deploy(args: argparse.Namespace) -> int:
    checks = Checks(args.dry_run)
    os.environ.setdefault("PYTHONANYWHERE_SITE", api_host())  # before pythonanywhere-core reads it
    step("Checking .env")
    checks.run(check_env)
    api = Api(dry_run=args.dry_run)
    site = domain()
    venv = virtualenv()
    webapp = f"{api.webapps}{site}/"

    step(f"Web app {site}")
    from pythonanywhere_core.base import PYTHON_VERSIONS

    python = PYTHON_VERSIONS[PYTHON_VERSION]  # "3.12" -> "python312", as the API takes it
    settings = {"source_directory": str(PROJECT), "virtualenv_path": str(venv), "force_https": True}
    # Whether it exists, from the documented list: a GET of a missing web app answered 403, not
    # 404, in a recorded session of the real API.
    listed = checks.run(api.get, api.webapps, [LISTED_FIELDS])
    existing = None
    if any(item["domain_name"].lower() == site for item in listed or []):
        existing = checks.run(api.get, webapp, WEBAPP_FIELDS)
    if existing is None:
        say("does not exist yet" if listed is not None else "unknown: planned as a new one")
        api.send("POST", api.webapps, data={"domain_name": site, "python_version": python})
    else:
        checks.run(check_takeover, existing, site, args.force)
        if python_of(existing["python_version"]) != PYTHON_VERSION:
            settings["python_version"] = python  # the virtualenv is built for it anyway
    api.send("PATCH", webapp, data=settings)

    step(f"WSGI file {wsgi_path(args.root)}")
    write_wsgi_file(wsgi_path(args.root), args.dry_run)

    step("Static files: /static/")
    static = {"url": "/static/", "path": str(PROJECT / PACKAGE / "static")}
    mappings = checks.run(api.get, f"{webapp}static_files/", [MAPPING_FIELDS]) if existing else []
    current = next((m for m in mappings or [] if m["url"] == static["url"]), None)
    if current is None:
        api.send("POST", f"{webapp}static_files/", json=static)
    elif current["path"] != static["path"]:
        api.send("PATCH", f"{webapp}static_files/{current['id']}/", json=static)
    else:
        say(f"already mapped to {static['path']}")
    checks.run(set_static_header, api, webapp, existing is not None)

    step("Reload")
    try:
        api.send("POST", f"{webapp}reload/")
    except DeployError as error:  # a reload pings the app (~20 s) and fails if it does not answer
        raise DeployError(f"the reload failed: {error}\n{log_tail(error_log(args.root))}") from None
    check_health(site, args)
    return checks.verdict()


def set_static_header(api, webapp: str, exists: bool) -> None:
    """One Cache-Control header on /static/: created, corrected, or left as it is. An API that
    refuses it (a 4xx, another answer than documented) is said in one line, and the deployment
    goes on: the files are served all the same, revalidated as browsers do by default."""
    url, wanted = f"{webapp}static_headers/", STATIC_HEADER
    try:
        listed = api.get(url, [HEADER_FIELDS]) if exists else []
        ours = [header for header in listed or [] if header["url"] == wanted["url"]
                and header["name"].lower() == wanted["name"].lower()]  # fmt: skip
        if not ours:
            api.send("POST", url, json=wanted)
        elif (ours[0]["name"], ours[0]["value"]) != (wanted["name"], wanted["value"]):
            api.send("PATCH", f"{url}{ours[0]['id']}/", json=wanted)
        else:
            say(f"{wanted['name']}: {wanted['value']} already set")
        for extra in ours[1:]:  # one header, not two that disagree
            api.send("DELETE", f"{url}{extra['id']}/")
    except Refused as error:
        say(
            f"warning: the {wanted['name']} header for {wanted['url']} could not be set ({error}): "
            "static files are still served, and browsers revalidate them as they do by default"
        )


def check_env() -> None:
    """Refuse to touch the live app with a .env it could not start with."""
    from dotenv import dotenv_values

    path = PROJECT / ".env"
    if not path.is_file():
        raise DeployError(
            f"{path} is missing: copy .env.example to .env and set SECRET_KEY "
            "(upload .env with the project, or see docs/deploy.md)"
        )
    env = dotenv_values(path)
    if len((env.get("SECRET_KEY") or "").strip()) < 32:
        raise DeployError(
            f"{path} has no real SECRET_KEY (at least 32 random characters): set one, e.g. "
            "the output of python3 -c 'import secrets; print(secrets.token_hex(32))'"
        )
    # The app as the web app will build it: from .env's values alone (it opens no connection),
    # never in debug mode, where a backend with its server unset would fall back to simple.
    sys.path.insert(0, str(PROJECT))
    import importlib
    import importlib.util
    import logging

    logging.getLogger(PACKAGE).addHandler(logging.NullHandler())  # the messages below say it
    package = importlib.import_module(PACKAGE)
    try:
        config = package.create_app(
            {"DEBUG": False}, environ={k: v or "" for k, v in env.items()}
        ).config
    except package.cache.ConfigError as error:
        raise DeployError(f"{path}: {error}") from None
    backend = package.cache.BACKENDS[config["CACHE_TYPE"]]
    local = [host for host in backend.hosts(config) if is_local(host)]
    if local:
        raise DeployError(  # a server backend's first variable names its server
            f"{path}: CACHE_TYPE={backend.name} but {backend.variables[0]} points at this machine "
            f"({', '.join(local)}), and PythonAnywhere runs no such server: set it to your "
            "hosted server (docs/caching.md), or CACHE_TYPE=simple"
        )
    if backend.requires and importlib.util.find_spec(backend.requires) is None:
        raise DeployError(
            f"{path}: CACHE_TYPE={backend.name} needs the {backend.requires} package, which "
            f"requirements.txt does not install: add its line from requirements-dev.txt to "
            "requirements.txt, then run this again"
        )
    say(f"SECRET_KEY set; CACHE_TYPE={backend.name} ({backend.describe(config)})")
    baked = baked_answers().get("cache_backend")
    # Another backend is a choice, not a mistake: say it, and go on.
    if isinstance(baked, str) and baked and backend.name != baked:
        say(
            f"warning: .env has CACHE_TYPE={backend.name}, but this project was baked with "
            f"{excerpt(baked, quoted=False)}: edit CACHE_TYPE in .env if {backend.name} is not "
            "what you want"
        )


def baked_answers() -> dict:
    """The answers kept at bake time (the answers file; the .py files are the same for every
    cache backend), or {} when the file is gone or unreadable."""
    try:
        answers = json.loads((PROJECT / ".cookiecutter.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return answers if isinstance(answers, dict) else {}


def is_local(host: str) -> bool:
    return host in LOCAL_HOSTS or host.startswith("127.")


def check_takeover(existing: dict, site: str, force: bool) -> None:
    source = existing.get("source_directory") or ""
    if source.rstrip("/") != str(PROJECT) and not force:
        raise DeployError(
            f"{site} already serves another app (source directory "
            f"{excerpt(source, quoted=False) if source else 'not set'}): run "
            f"again with --force to point it at {PROJECT} (its WSGI file is backed up)"
        )
    running = excerpt(existing["python_version"], quoted=False)
    if python_of(existing["python_version"]) != PYTHON_VERSION:
        say(f"exists (Python {running}); switching it to Python {PYTHON_VERSION} and updating it")
    else:
        say(f"exists (Python {running}); updating it")


def python_of(reported: str) -> Optional[str]:
    """A web app's python_version, "3.10" or "python310", as "3.10"; None if neither form."""
    found = PYTHON_FORMS.match(reported)
    return f"{found[1]}.{found[2]}" if found else None


def write_wsgi_file(path: Path, dry_run: bool) -> None:
    text = wsgi_source()
    if path.exists() and path.read_text() == text:
        say("unchanged")
        return
    backup = path.with_name(f"{path.name}.{time.strftime('%Y%m%d-%H%M%S')}.bak")
    if dry_run:
        kept = f", backing up the old one to {backup.name}" if path.exists() else ""
        say(f"would write it{kept}")
        return
    if path.exists():
        shutil.copy2(path, backup)
        say(f"old one backed up to {backup}")
    temporary = path.with_name(f".{path.name}.new")
    temporary.write_text(text)
    os.replace(temporary, path)  # the web app never sees half a file
    say("written")


def check_health(site: str, args: argparse.Namespace) -> None:
    import requests

    url = f"https://{site}/health"
    step(f"Health check {url}")
    if args.dry_run:
        say("would request it until it answers 200")
        return
    deadline = time.monotonic() + args.wait
    while True:
        try:
            response = requests.get(url, timeout=15)
            problem = f"answered {response.status_code}"
            if response.status_code == 200:
                health = parse_json(response.content)
                if fits(health, HEALTH_FIELDS):
                    break
                problem = "answered 200 but not with this app's health report: " + excerpt(
                    response.content
                )
        except requests.exceptions.ProxyError as error:
            # Free consoles reach only allowlisted sites through their proxy, which may not list
            # the site itself: the deployment is done, only this console cannot look at it.
            say(f"not checked: this console's proxy {proxy_refusal(error)} for {site}")
            print(f"\nDeployed: open {url} in your browser to check it\n"
                  f"Error log: {error_log(args.root)}", flush=True)  # fmt: skip
            return
        except (requests.RequestException, ValueError) as error:  # ValueError: unreadable
            problem = f"failed: {type(error).__name__}"
        if time.monotonic() >= deadline:
            raise DeployError(f"{url} {problem} after the reload\n{log_tail(error_log(args.root))}")
        time.sleep(1)
    say(f"200 {excerpt(json.dumps(health), quoted=False)}")
    check_cache(health["cache"], url, args.root)
    print(f"\nDeployed: https://{site}/\nError log: {error_log(args.root)}", flush=True)


def proxy_refusal(error: Exception) -> str:
    """What a proxy said to CONNECT, from urllib3's "Tunnel connection failed: 403 Forbidden"."""
    found = re.search(r"Tunnel connection failed: (\d{3})", str(error))
    return f"answered {found.group(1)}" if found else "could not open a tunnel"


def check_cache(cache: dict, url: str, root: Path) -> None:
    """The live app serves from the backend .env asks for, or the deployment failed."""
    backend, active = plain(cache.get("backend")), plain(cache.get("active"))
    say(f"cache: backend {excerpt(backend, quoted=False)}, active {excerpt(active, quoted=False)}")
    if backend == active:
        return
    import importlib

    kind = importlib.import_module(PACKAGE).cache.BACKENDS.get(backend)  # imported by check_env
    variables = getattr(kind, "variables", ())
    setting = variables[0] if variables else "CACHE_TYPE"  # a server backend's first names it
    error = cache.get("last_error") if isinstance(cache.get("last_error"), dict) else {}
    # The server's own error, as the app's /health reports it (type and message, redacted there).
    said = [excerpt(plain(error[k]), quoted=False) for k in ("type", "message") if error.get(k)]
    why = f" ({': '.join(said)})" if said else ""
    if kind is not None and kind.refused(plain(error.get("type")), plain(error.get("message"))):
        # A quota used up: no setting to fix; the site serves from each worker's memory.
        advice = "it refuses every command until its quota resets (docs/upstash.md)"
    else:
        advice = f"fix {setting} in {PROJECT / '.env'} (docs/caching.md), then run this again"
    raise DeployError(
        f"the live app serves from {excerpt(active, quoted=False)} because "
        f"{excerpt(backend, quoted=False)} failed{why}: {advice}; {url} says which backend "
        f"serves\n{log_tail(error_log(root))}"
    )


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        tail = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return f"The error log {path} could not be read; open it from the Web tab."
    return f"The last lines of {path}:\n" + "\n".join(f"    {line}" for line in tail)


class Api:
    """PythonAnywhere's API through pythonanywhere-core's call_api (token header, host, user).

    pythonanywhere-core's Webapp methods turn every failure into one generic exception; the
    status codes are handled here instead, so each problem gets its own message: a refused
    token, the rate limit (waited out when short), a refused Python version. Every answer is
    checked before it is used: anything else than what the API documents (a proxy's page, a
    redirect, another shape) stops the deployment with one line naming the call and a short
    excerpt of what came back; a 4xx or another shape is a Refused, which a step that can do
    without catches.
    """

    def __init__(self, dry_run: bool):
        from pythonanywhere_core.base import get_api_endpoint

        self.dry_run = dry_run
        self.host = os.environ["PYTHONANYWHERE_SITE"]
        self.webapps = get_api_endpoint(username=username(), flavor="webapps")

    def get(self, url: str, shape):
        """The answer's JSON, which must have ``shape`` (see fits)."""
        response, body = self.call("GET", url)
        self.check(response, body, "GET", url)
        if not fits(body, shape):
            fields = ", ".join(shape[0] if isinstance(shape, list) else shape)
            kind = "list of objects" if isinstance(shape, list) else "object"
            raise unexpected("GET", url, response, f"not a JSON {kind} with {fields}", Refused)
        return body

    def send(self, method: str, url: str, **payload) -> None:
        """A request that changes something: printed, and only printed with --dry-run."""
        body = payload.get("data") or payload.get("json") or {}
        shown = f"{method} {url} {json.dumps(body)}" if body else f"{method} {url}"
        if self.dry_run:
            say(f"would {shown}")
            return
        response, body = self.call(method, url, **payload)
        self.check(response, body, method, url)
        if response.content.strip() and not isinstance(body, dict):
            raise unexpected(method, url, response, "not a JSON object", Refused)
        say(f"{shown} -> {response.status_code}")

    def call(self, method: str, url: str, **payload):
        """The response and its JSON body (None if it has none), read once."""
        import requests
        from pythonanywhere_core.base import call_api
        from pythonanywhere_core.exceptions import AuthenticationError

        for attempt in range(1, RATE_LIMIT_TRIES + 1):
            try:
                # The API never redirects: a redirect is a proxy or a login page, not followed.
                response = call_api(
                    url, method.lower(), timeout=30, allow_redirects=False, **payload
                )
            except AuthenticationError:
                raise DeployError(
                    f"{method} {url}: {self.host} refused API_TOKEN (401): check the token on "
                    f"the Account page (API Token tab) of your account on {self.host}; an "
                    "account on the other region's site has a different token and host"
                ) from None
            except (requests.ConnectionError, requests.Timeout) as error:
                raise DeployError(
                    f"{method} {url}: cannot reach {self.host}: {type(error).__name__}"
                ) from None
            except (requests.RequestException, ValueError) as error:  # e.g. a Location not UTF-8
                raise DeployError(
                    f"{method} {url}: the answer could not be read ({type(error).__name__}), "
                    "which PythonAnywhere's API does not answer (a proxy or a changed API?)"
                ) from None
            if response.status_code != 429:
                return response, parse_json(response.content)
            wait = retry_after(response)
            if attempt == RATE_LIMIT_TRIES or wait > MAX_WAIT:
                raise DeployError(
                    f"{method} {url}: PythonAnywhere's API rate limit (40 requests a minute "
                    f"per endpoint) is still reached: wait {wait:.0f} s, then run this again"
                )
            say(f"rate limited by the API: waiting {wait:.0f} s, then trying again")
            time.sleep(wait)
        raise AssertionError("unreachable")

    def check(self, response, body, method: str, url: str) -> None:
        status = response.status_code
        if 300 <= status < 400:
            where = excerpt(response.headers.get("Location", ""))
            raise unexpected(method, url, response, f"a redirect to {where}")
        fields = body if isinstance(body, dict) else {}
        if 200 <= status < 300 and fields.get("status") != "ERROR":
            return
        detail = error_detail(body, response.content)
        if status == 400 and "python_version" in fields:
            raise DeployError(
                f"PythonAnywhere refused Python {PYTHON_VERSION} for the web app ({detail}): "
                "your account's system image may not offer it (Account page, System image "
                "tab); pick another Python there or re-bake with another python_version"
            )
        error = DeployError if status >= 500 else Refused
        raise error(f"{method} {url} failed with {status}: {detail}")


def unexpected(method: str, url: str, response, what: str, error=DeployError) -> DeployError:
    return error(
        f"{method} {url} answered {response.status_code} with {what}, which PythonAnywhere's API "
        f"does not answer (a proxy or a changed API?): {excerpt(response.content)}"
    )


def parse_json(content: bytes):
    """The body as JSON, or None: the API's JSON is UTF-8; nesting too deep is not JSON to us."""
    try:
        return json.loads(content.decode("utf-8"))
    except (ValueError, RecursionError):
        return None


def fits(body, shape) -> bool:
    """Whether JSON ``body`` has ``shape``: a dict of field types for an object, or a list
    holding one such dict for a list of objects."""
    if isinstance(shape, list):
        return isinstance(body, list) and all(fits(item, shape[0]) for item in body)
    return isinstance(body, dict) and all(
        name in body
        and isinstance(body[name], types)
        and (bool in types or not isinstance(body[name], bool))  # an int to Python, not to JSON
        for name, types in shape.items()
    )


def error_detail(body, content: bytes) -> str:
    """The API's error message, {"detail"}, {"error_message"} or {"field": ["message"]}, or the
    start of whatever else came back."""
    if isinstance(body, dict) and ("detail" in body or "error_message" in body):
        body = body.get("error_message") or body.get("detail")
    elif isinstance(body, dict) and body:
        body = "; ".join(f"{key}: {plain(value)}" for key, value in body.items())
    if isinstance(body, str) and body.strip():
        return excerpt(body)
    return excerpt(content)


def plain(value) -> str:
    if isinstance(value, list):
        return " ".join(map(str, value))
    return str(value)


def excerpt(text, quoted: bool = True) -> str:
    """A short excerpt of ``text`` (str or bytes) for a one-line message: printable characters
    only, the API token blanked out, cut at EXCERPT characters."""
    unit = "bytes" if isinstance(text, bytes) else "characters"
    size, window = len(text), EXCERPT * 64  # a window that fills an excerpt past runs of blanks
    text = text[:window]
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    token = os.environ.get("API_TOKEN", "")
    if len(token) >= 8:
        text = text.replace(token, "<API_TOKEN>")
        if size > window:  # the cut may have split the token: what remains of it goes too
            cut = [n for n in range(4, len(token)) if text.endswith(token[:n])]
            text = text[: -max(cut)] if cut else text
    text = " ".join("".join(char if char.isprintable() else " " for char in text).split())
    if not text:
        return "an empty body" if quoted else "nothing"
    if len(text) > EXCERPT or size > window:
        return f"{text[:EXCERPT]!r}... ({size} {unit})" if quoted else f"{text[:EXCERPT]}..."
    return repr(text) if quoted else text


def retry_after(response) -> float:
    """Retry-After in seconds: a number of seconds or an HTTP date (RFC 9110); UNSAID_WAIT if it
    says nothing usable (missing, negative, nan, garbage)."""
    value = response.headers.get("Retry-After", "").strip()
    if re.fullmatch(r"[0-9]{1,9}", value):
        return float(value)
    if re.fullmatch(r"[0-9]+", value):
        return float(10**9)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return float(UNSAID_WAIT)
    if when.tzinfo is None:
        return float(UNSAID_WAIT)
    return max(when.timestamp() - time.time(), 0.0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
