"""deploy.py end to end, against a stand-in for PythonAnywhere (pythonanywhere_fake.py).

The baked project is copied to a fake /home/alice, deploy.py runs there as in a Bash console
(through a proxy, with API_TOKEN set), builds a real virtualenv with pip, and the fake's reload
serves the result with real uWSGI inside that virtualenv. The virtualenv is kept between tests,
as it is between deployments; everything else starts afresh for each test.
"""

import copy
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests

from .pythonanywhere_fake import FakePythonAnywhere, python_tag
from .test_hooks import post_gen

# One worker runs them all, in order: they share the virtualenv deploy.py builds.
pytestmark = pytest.mark.xdist_group("deploy")

USER, TOKEN = "alice", "alice-api-token-0123456789abcdef"
DOMAIN = "alice.pythonanywhere.com"
WEBAPP = f"webapps/{DOMAIN}/"
PYTHON = python_tag()  # the Python of this machine, so uWSGI (pyuwsgi) can run the virtualenv
CACHE_CONTROL = "public, max-age=31536000, immutable"  # what deploy.py asks for /static/


@pytest.fixture(scope="module")
def world(bake, tmp_path_factory):
    source = bake(python_version=PYTHON, pythonanywhere_username=USER)
    work = tmp_path_factory.mktemp("pythonanywhere")
    home = work / "home" / USER
    home.mkdir(parents=True)
    fake = FakePythonAnywhere(work, home, USER, TOKEN, "www.pythonanywhere.com")
    yield SimpleNamespace(source=source, home=home, fake=fake, project=home / source.name)
    fake.close()


@pytest.fixture
def pa(world):
    """A new account, and a fresh upload of the project to /home/alice/<project>."""
    world.fake.reset()
    shutil.rmtree(world.project, ignore_errors=True)
    shutil.copytree(world.source, world.project)
    return world


def deploy(world, *args: str, **env: str) -> subprocess.CompletedProcess:
    """deploy.py in a console of the stand-in, whose / (var/www, var/log) is --root."""
    return subprocess.run(
        [sys.executable, "deploy.py", *args, "--root", str(world.fake.root)],
        cwd=world.project,
        env=world.fake.client_env(TOKEN, **env),
        capture_output=True,
        text=True,
        timeout=900,
    )


def deployed(world, *args: str) -> subprocess.CompletedProcess:
    result = deploy(world, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def refused(result: subprocess.CompletedProcess, message: str) -> None:
    """Exit 1 with one clear first line on stderr, and no traceback of deploy.py's own."""
    assert result.returncode == 1, result.stdout + result.stderr
    first = result.stderr.strip().splitlines()[0]
    assert first.startswith("deploy.py: ") and message in first, result.stderr
    assert 'deploy.py", line' not in result.stderr


def live(world, path: str) -> requests.Response:
    proxy = world.fake.client_env(TOKEN)["https_proxy"]
    return requests.get(
        f"https://{DOMAIN}{path}", proxies={"https": proxy}, verify=str(world.fake.ca_bundle), timeout=30
    )


def set_env(path: Path, **values: str) -> None:
    text = path.read_text()
    for name, value in values.items():
        text, count = re.subn(rf"^{name}=.*$", f"{name}={value}", text, flags=re.M)
        assert count == 1, name
    path.write_text(text)


def backups(world) -> list[Path]:
    wsgi = world.fake.wsgi_file(DOMAIN)
    return sorted(wsgi.parent.glob(f"{wsgi.name}.*.bak"))


def test_first_run_creates_the_web_app_and_serves_it(pa):
    env_file = pa.project / ".env"
    set_env(env_file, CACHE_TYPE="filesystem")  # a value the live site must show it read
    env_before = env_file.read_bytes()

    result = deployed(pa)

    assert pa.fake.requested() == [
        ("GET", "webapps/"),
        ("POST", "webapps/"),
        ("PATCH", WEBAPP),
        ("POST", f"{WEBAPP}static_files/"),
        ("POST", f"{WEBAPP}static_headers/"),
        ("POST", f"{WEBAPP}reload/"),
    ]
    python = f"python{PYTHON.replace('.', '')}"
    assert pa.fake.requests[1][2] == {"domain_name": DOMAIN, "python_version": python}
    assert "python_version" not in pa.fake.requests[2][2], "created with the right one"
    webapp = pa.fake.webapps[DOMAIN]
    venv = pa.home / ".virtualenvs" / pa.project.name
    assert webapp["source_directory"] == str(pa.project)
    assert webapp["virtualenv_path"] == str(venv)
    assert webapp["force_https"] is True
    [mapping] = pa.fake.static_files[DOMAIN]
    assert (mapping["url"], mapping["path"]) == ("/static/", str(pa.project / pa.project.name / "static"))
    wsgi = pa.fake.wsgi_file(DOMAIN)
    assert f'DEFAULT_HOME = "{pa.project}"' in wsgi.read_text()
    [backup] = backups(pa)
    assert "PythonAnywhere's default WSGI file" in backup.read_text()

    health = live(pa, "/health")
    assert health.status_code == 200
    assert health.json()["cache"]["backend"] == "filesystem"
    assert live(pa, "/example").status_code == 200
    assert any((pa.project / "instance" / "cache").iterdir()), "the cache is in the project"
    css = live(pa, "/static/style.css")
    assert css.status_code == 200 and css.headers["Content-Type"] == "text/css"

    assert env_file.read_bytes() == env_before
    assert f"Deployed: https://{DOMAIN}/" in result.stdout
    assert str(pa.fake.error_log(DOMAIN)) in result.stdout
    assert TOKEN not in result.stdout + result.stderr


def test_second_run_updates_in_place(pa):
    deployed(pa)
    first_backups = backups(pa)
    env_before = (pa.project / ".env").read_bytes()
    # Edits made on the Web tab since: another virtualenv, another static folder.
    pa.fake.webapps[DOMAIN]["virtualenv_path"] = f"/home/{USER}/.virtualenvs/old"
    [mapping] = pa.fake.static_files[DOMAIN]
    mapping["path"] = f"/home/{USER}/old/static"
    [header] = pa.fake.static_headers[DOMAIN]
    header["value"] = "max-age=60"
    pa.fake.static_headers[DOMAIN].append(
        {"id": 99, "url": "/static/", "name": "cache-control", "value": "no-cache"}
    )
    pa.fake.requests.clear()

    result = deployed(pa)

    assert pa.fake.requested() == [
        ("GET", "webapps/"),
        ("GET", WEBAPP),
        ("PATCH", WEBAPP),
        ("GET", f"{WEBAPP}static_files/"),
        ("PATCH", f"{WEBAPP}static_files/{mapping['id']}/"),
        ("GET", f"{WEBAPP}static_headers/"),
        ("PATCH", f"{WEBAPP}static_headers/{header['id']}/"),
        ("DELETE", f"{WEBAPP}static_headers/99/"),  # one Cache-Control, not two that disagree
        ("POST", f"{WEBAPP}reload/"),
    ]
    assert list(pa.fake.webapps) == [DOMAIN]
    assert pa.fake.webapps[DOMAIN]["virtualenv_path"] == str(pa.home / ".virtualenvs" / pa.project.name)
    assert pa.fake.static_files[DOMAIN] == [
        {"id": mapping["id"], "url": "/static/", "path": str(pa.project / pa.project.name / "static")}
    ]
    assert pa.fake.static_headers[DOMAIN] == [{**header, "value": CACHE_CONTROL}]
    assert backups(pa) == first_backups, "an unchanged WSGI file is not rewritten"
    assert "unchanged" in result.stdout
    assert (pa.project / ".env").read_bytes() == env_before
    assert live(pa, "/health").status_code == 200


STYLESHEET = re.compile(r'<link rel="stylesheet" href="([^"]+)"')


def test_static_files_are_cached_for_a_year_under_versioned_urls(pa):
    deployed(pa)

    assert [(h["url"], h["name"], h["value"]) for h in pa.fake.static_headers[DOMAIN]] == [
        ("/static/", "Cache-Control", CACHE_CONTROL)
    ]
    page = live(pa, "/")
    assert page.headers.get("Cache-Control") != CACHE_CONTROL, "pages are not static files"
    url = STYLESHEET.search(page.text).group(1)
    assert re.fullmatch(r"/static/style\.css\?v=[0-9a-f]{8}", url), url
    css = live(pa, url)  # served by the static files mapping, its query string ignored
    assert css.status_code == 200 and css.headers["Cache-Control"] == CACHE_CONTROL
    assert css.content == (pa.project / pa.project.name / "static" / "style.css").read_bytes()


def test_a_second_deploy_leaves_the_static_header_alone(pa):
    deployed(pa)
    headers = copy.deepcopy(pa.fake.static_headers[DOMAIN])
    pa.fake.requests.clear()

    result = deployed(pa)

    assert [call for call in pa.fake.requested() if "static_headers" in call[1]] == [
        ("GET", f"{WEBAPP}static_headers/")
    ]
    assert pa.fake.static_headers[DOMAIN] == headers
    assert f"Cache-Control: {CACHE_CONTROL} already set" in result.stdout


@pytest.mark.parametrize(
    "method, status, body",
    [
        ("POST", 400, {"value": ["Not a valid string."]}),  # a value it does not take
        ("GET", 404, {"detail": "Not found."}),  # no such endpoint (any more)
        # Another shape: value as an object, as a third-party client (ammarsys/pyaww) types it.
        ("GET", 200, [{"id": 3, "url": "/static/", "name": "Cache-Control", "value": {"max-age": "60"}}]),
    ],
    ids=["post-400", "get-404", "get-other-shape"],
)
def test_a_static_header_the_api_refuses_is_one_line_and_the_deploy_goes_on(pa, method, status, body):
    if method == "GET":  # asked only of a web app that exists
        pa.fake.existing_webapp(DOMAIN, "# old\n", source_directory=str(pa.project), python_version=PYTHON)
    pa.fake.answers[method, f"{WEBAPP}static_headers/"] = (status, body)

    result = deploy(pa)

    assert result.returncode == 0 and result.stderr == "", result.stdout + result.stderr
    [line] = [line for line in result.stdout.splitlines() if "Cache-Control" in line]
    url = f"https://www.pythonanywhere.com/api/v0/user/{USER}/{WEBAPP}static_headers/"
    why = f"failed with {status}" if status >= 400 else f"answered {status} with not a JSON list"
    assert line.strip().startswith(f"warning: the Cache-Control header for /static/ could not be set "
                                   f"({method} {url} {why}"), line  # fmt: skip
    assert line.endswith("static files are still served, and browsers revalidate them as they do by default")
    assert TOKEN not in result.stdout
    assert f"Deployed: https://{DOMAIN}/" in result.stdout
    css = live(pa, "/static/style.css")
    assert css.status_code == 200 and "Cache-Control" not in css.headers


def test_a_server_error_on_the_static_header_stops_the_deployment(pa):
    """A 5xx is PythonAnywhere failing, not refusing: as at every other step."""
    pa.fake.answers["POST", f"{WEBAPP}static_headers/"] = (500, "<h1>Server Error (500)</h1>")
    url = f"https://www.pythonanywhere.com/api/v0/user/{USER}/{WEBAPP}static_headers/"
    refused(deploy(pa), f"POST {url} failed with 500")
    assert ("POST", f"{WEBAPP}reload/") not in pa.fake.requested()


def test_dry_run_of_a_first_deployment_changes_nothing(pa, tmp_path):
    result = deploy(pa, "--dry-run", HOME=str(tmp_path))  # a console with no virtualenv yet

    assert result.returncode == 0, result.stdout + result.stderr
    assert pa.fake.requested() == [("GET", "webapps/")]
    assert list(pa.fake.wsgi_file(DOMAIN).parent.iterdir()) == []
    assert not (tmp_path / ".virtualenvs").exists()
    api = f"https://www.pythonanywhere.com/api/v0/user/{USER}/"
    assert re.search(rf"would create it with \S*python{PYTHON}, then: pip install", result.stdout)
    for planned in (
        f"would POST {api}webapps/ ",
        f"would PATCH {api}{WEBAPP} ",
        "would write it",
        f"would POST {api}{WEBAPP}static_files/ ",
        f"would POST {api}{WEBAPP}static_headers/ ",
        f"would POST {api}{WEBAPP}reload/",
        "would request it",
    ):
        assert planned in result.stdout, planned


def test_dry_run_of_an_update_changes_nothing(pa):
    deployed(pa)
    wsgi = pa.fake.wsgi_file(DOMAIN)
    (pa.project / "pythonanywhere_wsgi.py").write_text(
        (pa.project / "pythonanywhere_wsgi.py").read_text() + "# changed since\n"
    )
    state = [copy.deepcopy(x) for x in (pa.fake.webapps, pa.fake.static_files, pa.fake.static_headers)]
    files = {path: path.read_bytes() for path in wsgi.parent.iterdir()}
    pa.fake.requests.clear()

    result = deploy(pa, "--dry-run")

    assert result.returncode == 0, result.stdout + result.stderr
    assert {method for method, _ in pa.fake.requested()} == {"GET"}
    assert [pa.fake.webapps, pa.fake.static_files, pa.fake.static_headers] == state
    assert {path: path.read_bytes() for path in wsgi.parent.iterdir()} == files
    assert "would write it, backing up the old one" in result.stdout
    assert f"would POST https://www.pythonanywhere.com/api/v0/user/{USER}/{WEBAPP}reload/" in result.stdout


def test_no_api_token(pa):
    refused(deploy(pa, API_TOKEN=""), "API_TOKEN is not set: create a token on the Account page")
    assert pa.fake.requests == []


def test_console_on_the_other_region(pa):
    result = deploy(pa, PYTHONANYWHERE_SITE="eu.pythonanywhere.com")
    refused(result, "this console is on eu.pythonanywhere.com (EU) but the project was baked for "
                    "www.pythonanywhere.com (US): re-bake with pythonanywhere_region=eu")  # fmt: skip
    assert pa.fake.requests == []


def test_token_the_host_does_not_know(pa):
    refused(deploy(pa, API_TOKEN="a-token-of-the-eu-site"), "www.pythonanywhere.com refused API_TOKEN (401)")
    assert pa.fake.requests == []


def test_domain_serving_another_app_needs_force(pa):
    blog = "# the WSGI file of alice's blog\n"
    pa.fake.existing_webapp(DOMAIN, blog, source_directory=f"/home/{USER}/blog", python_version=PYTHON)
    pa.fake.requests.clear()

    refused(deploy(pa), f"{DOMAIN} already serves another app (source directory /home/{USER}/blog)")
    assert pa.fake.requested() == [("GET", "webapps/"), ("GET", WEBAPP)]
    assert pa.fake.wsgi_file(DOMAIN).read_text() == blog

    deployed(pa, "--force")
    assert pa.fake.webapps[DOMAIN]["source_directory"] == str(pa.project)
    assert [path.read_text() for path in backups(pa)] == [blog]
    assert live(pa, "/health").status_code == 200


def test_a_missing_web_app_answers_403_as_the_real_api_did(pa):
    status, body, _ = pa.fake.api("GET", "www.pythonanywhere.com", f"/api/v0/user/{USER}/{WEBAPP}",
                                  {"Authorization": f"Token {TOKEN}"}, b"")  # fmt: skip
    assert status == 403 and len(body) == 63 and b"permission" in body
    deployed(pa)  # the first deployment does not stop on it
    assert DOMAIN in pa.fake.webapps


def test_the_stand_in_takes_a_static_header_only_with_url_name_and_value(pa):
    """API.md's parameters for POST and PUT of static_headers: "url, name, value"."""
    pa.fake.existing_webapp(DOMAIN, "# old\n")
    headers = {"Authorization": f"Token {TOKEN}", "Content-Type": "application/json"}
    path = f"/api/v0/user/{USER}/{WEBAPP}static_headers/"

    def api(method: str, path: str, body: dict) -> tuple[int, object]:
        status, answer, _ = pa.fake.api(
            method, "www.pythonanywhere.com", path, headers, json.dumps(body).encode()
        )
        return status, answer

    assert api("POST", path, {"url": "/static/"}) == (
        400,
        {"name": ["This field is required."], "value": ["This field is required."]},
    )
    wanted = {"url": "/static/", "name": "Cache-Control", "value": {"max-age": 60}}
    assert api("POST", path, wanted) == (400, {"value": ["Not a valid string."]})
    assert pa.fake.static_headers[DOMAIN] == []
    status, created = api("POST", path, {**wanted, "value": "no-cache"})
    assert status == 201 and created["value"] == "no-cache"
    assert api("PATCH", f"{path}{created['id']}/", {"value": "max-age=60"}) == (
        200,
        {**created, "value": "max-age=60"},
    )
    assert api("PUT", f"{path}{created['id']}/", {"value": "max-age=60"})[0] == 400


def test_a_create_answering_200_as_the_real_api_did(pa):
    pa.fake.create_status = 200
    result = deployed(pa)
    assert f"POST https://www.pythonanywhere.com/api/v0/user/{USER}/webapps/" in result.stdout
    assert live(pa, "/health").status_code == 200


PYTHON_CODE = f"python{PYTHON.replace('.', '')}"  # as the create and PATCH take it


# Both forms the sources show; the baked tests try every other text.
@pytest.mark.parametrize("reported, patched", [("3.9", True), ("python38", True), (PYTHON_CODE, False)])
def test_web_app_on_another_python_is_switched(pa, reported, patched):
    """The GET's python_version, in either form the sources show, compared with the baked one."""
    pa.fake.existing_webapp(DOMAIN, "# old\n", source_directory=str(pa.project), python_version=reported)
    pa.fake.requests.clear()

    result = deployed(pa)

    [patch] = [payload for method, path, payload in pa.fake.requests if (method, path[-len(WEBAPP) :]) == (
        "PATCH", WEBAPP)]  # fmt: skip
    if patched:
        assert patch["python_version"] == PYTHON_CODE
        assert f"exists (Python {reported}); switching it to Python {PYTHON}" in result.stdout
    else:
        assert "python_version" not in patch
        assert f"exists (Python {reported}); updating it" in result.stdout
    assert live(pa, "/health").status_code == 200


@pytest.mark.parametrize(
    "status, body",
    [(500, {"status": "ERROR", "error_type": "reload_error",
            "error_message": "Your web app did not respond in time"}),
     (502, "<h1>Bad gateway</h1>")],
)  # fmt: skip
def test_a_failed_reload_says_so_and_shows_the_error_log(pa, status, body):
    pa.fake.reload_error = (status, body)
    result = deploy(pa)
    refused(result, f"the reload failed: POST https://www.pythonanywhere.com/api/v0/user/{USER}/{WEBAPP}"
                    f"reload/ failed with {status}")  # fmt: skip
    assert f"The last lines of {pa.fake.error_log(DOMAIN)}:" in result.stderr
    assert "Deployed" not in result.stdout


def test_redirects_while_the_reload_runs_are_waited_out(pa):
    pa.fake.reload_redirects = 2.5
    result = deployed(pa)
    assert pa.fake.redirects_sent > 0
    assert f"Deployed: https://{DOMAIN}/" in result.stdout


@pytest.mark.parametrize(
    "call",
    [("POST", "webapps/"), ("PATCH", WEBAPP)],
    ids=["create", "patch"],
)
def test_an_error_status_in_a_2xx_is_a_failure(pa, call):
    message = "Something went wrong on our side"
    pa.fake.answers[call] = (200, {"status": "ERROR", "error_type": "some_error", "error_message": message})
    method, path = call
    url = f"https://www.pythonanywhere.com/api/v0/user/{USER}/{path}"
    refused(deploy(pa), f"{method} {url} failed with 200: '{message}'")
    assert ("POST", f"{WEBAPP}reload/") not in pa.fake.requested()


def test_python_the_system_image_lacks(pa):
    pa.fake.pythons.discard(f"python{PYTHON.replace('.', '')}")
    try:
        refused(deploy(pa), f"PythonAnywhere refused Python {PYTHON} for the web app")
    finally:
        pa.fake.pythons.add(f"python{PYTHON.replace('.', '')}")
    assert pa.fake.requested() == [("GET", "webapps/"), ("POST", "webapps/")]


def test_python_missing_from_the_console(pa, tmp_path):
    refused(deploy(pa, PATH=str(tmp_path)), f"python{PYTHON} is not in this console")


def test_rate_limit_is_waited_out(pa):
    pa.fake.throttle(2)
    result = deployed(pa)
    assert result.stdout.count("rate limited by the API: waiting 1 s, then trying again") == 2


def test_rate_limit_that_lasts_stops_with_advice(pa):
    pa.fake.throttle(100)
    refused(deploy(pa), "API rate limit (40 requests a minute per endpoint) is still reached: wait 1 s")
    assert pa.fake.requests == []


def test_failing_health_check_shows_the_error_log(pa):
    wsgi = pa.project / "pythonanywhere_wsgi.py"
    text = wsgi.read_text()
    assert "\napplication = create_app()" in text
    planted = '\nraise RuntimeError("planted by the test")\napplication = '
    wsgi.write_text(text.replace("\napplication = ", planted))

    result = deploy(pa, "--wait", "3")

    refused(result, f"https://{DOMAIN}/health answered 500 after the reload")
    assert f"The last lines of {pa.fake.error_log(DOMAIN)}:" in result.stderr
    assert "RuntimeError: planted by the test" in result.stderr


@pytest.mark.parametrize(
    "values, message",
    [
        (None, ".env is missing: copy .env.example to .env"),
        ({"SECRET_KEY": ""}, "has no real SECRET_KEY"),
        ({"SECRET_KEY": "changeme"}, "has no real SECRET_KEY"),
        ({"CACHE_TYPE": "redsi"}, "CACHE_TYPE='redsi' is not valid"),
        ({"CACHE_TYPE": "redis"}, "CACHE_TYPE=redis but REDIS_URL points at this machine (127.0.0.1)"),
        (
            {"CACHE_TYPE": "memcached", "MEMCACHED_SERVERS": "localhost:11211"},
            "CACHE_TYPE=memcached but MEMCACHED_SERVERS points at this machine (localhost)",
        ),
        (  # the project was baked with simple: requirements.txt has no Redis client
            {"CACHE_TYPE": "redis", "REDIS_URL": "rediss://default:pw@example.upstash.io:6379"},
            "CACHE_TYPE=redis needs the redis package, which requirements.txt does not install",
        ),
    ],
    ids=[
        "missing",
        "empty-secret",
        "weak-secret",
        "unknown-backend",
        "local-redis",
        "local-memcached",
        "client-not-installed",
    ],
)
def test_env_is_checked_before_the_live_app_is_touched(pa, values, message):
    env_file = pa.project / ".env"
    if values is None:
        env_file.unlink()
    else:
        set_env(env_file, **values)
    refused(deploy(pa), message)
    assert pa.fake.requests == []


def test_deploy_py_imports_on_python_3_6(bake):
    """`python3 deploy.py` runs with the console's python3, which may be as old as 3.6 (an old
    system image): vermin reads the baked file, annotations included, for the Python it needs."""
    deploy_py = bake(python_version=PYTHON) / "deploy.py"
    checked = subprocess.run(
        [sys.executable, "-c", "import sys, vermin; sys.exit(vermin.main())",
         "--eval-annotations", "--no-tips", "--violations", "-t=3.6-", str(deploy_py)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Minimum required versions: 3.6" in checked.stdout, checked.stdout


@pytest.mark.parametrize(
    "backend, settings, setting",
    [
        (
            "redis",
            {"REDIS_URL": "redis://default:{secret}@no-such-host.invalid:6379/0"},
            "REDIS_URL",
        ),
        (
            "upstash",
            {
                "UPSTASH_REDIS_REST_URL": "https://no-such-host.invalid",
                "UPSTASH_REDIS_REST_TOKEN": "{secret}",
            },
            "UPSTASH_REDIS_REST_URL",
        ),
    ],
)
def test_a_cache_server_the_live_app_cannot_reach_fails_the_deployment(pa, backend, settings, setting):
    secret = "pw-" + "s3cret" * 4
    env_file = pa.project / ".env"
    text = env_file.read_text()
    text = re.sub(r"^CACHE_TYPE=.*$", f"CACHE_TYPE={backend}", text, flags=re.M)
    for name, value in settings.items():
        text = re.sub(rf"^#? *{name}=.*\n", "", text, flags=re.M) + f"{name}={value.format(secret=secret)}\n"
    env_file.write_text(text)
    requirements = pa.project / "requirements.txt"
    if backend == "redis":  # the bake chose simple: its requirements.txt has no Redis client
        requirements.write_text(requirements.read_text() + post_gen.BACKENDS["redis"]["requirement"] + "\n")
    try:
        result = deploy(pa, "--wait", "20")
    finally:  # the virtualenv is shared: later tests need it without redis
        venv_python = pa.home / ".virtualenvs" / pa.project.name / "bin" / "python"
        subprocess.run([str(venv_python), "-m", "pip", "uninstall", "-y", "-q", "redis"], check=False)

    refused(result, f"the live app serves from simple because {backend} failed")
    first = result.stderr.splitlines()[0]
    assert f"fix {setting} in {pa.project / '.env'}" in first
    # The error itself, as the live /health reports it: type and message, its host hidden there
    # (the error log's line, below, names it).
    said = re.search(rf"because {backend} failed \((ConnectionError|UpstashError): \S.*\): fix ", first)
    assert said, first
    assert "no-such-host.invalid" not in first
    assert f"cache: backend {backend}, active simple" in result.stdout
    assert f"The last lines of {pa.fake.error_log(DOMAIN)}:" in result.stderr
    assert f"cache: {backend} at" in result.stderr  # the breaker's line, from the error log
    assert secret not in result.stdout + result.stderr
    assert "Deployed:" not in result.stdout


@pytest.mark.parametrize(
    "answer",
    [  # PythonAnywhere's proxy for a host off its allowlist; a proxy that cannot reach the host
        b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/html\r\nContent-Length: 9\r\n\r\nForbidden",
        b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n",
    ],
    ids=["403", "502"],
)
def test_a_console_whose_proxy_refuses_the_site_still_deploys(pa, answer):
    pa.fake.refusals[DOMAIN] = answer
    try:
        result = deploy(pa)
    finally:
        pa.fake.refusals.clear()

    assert result.returncode == 0, result.stdout + result.stderr
    [line] = [line for line in result.stdout.splitlines() if "not checked" in line]
    status = answer[9:12].decode()
    assert line.strip() == f"not checked: this console's proxy answered {status} for {DOMAIN}"
    assert f"Deployed: open https://{DOMAIN}/health in your browser to check it" in result.stdout
    assert result.stderr == ""
    assert live(pa, "/health").status_code == 200  # deployed all the same
