"""A stand-in for PythonAnywhere on loopback, for testing deploy.py end to end.

PythonAnywhere's own API cannot run here, so this follows its documented contract
(help.pythonanywhere.com/pages/API, in github.com/pythonanywhere/help_pages: API.md) for the
endpoints deploy.py uses, and what the primary sources below show beyond it (FACTS.md,
2026-11-26):

- `Authorization: Token <token>`; an unknown token is 401 `{"detail": "Invalid token."}`, another
  user's path 403; each region's host (www., eu.) knows only its own accounts.
- `/api/v0/user/<user>/webapps/` GET (list), POST (domain_name, python_version such as
  "python311"; a domain other than the user's own, or a taken one, is 400
  `{"status": "ERROR", "error_type": "domain_name_error", ...}`; a Python the system image lacks
  is a 400 field error, as Django REST framework gives it); creating a web app writes
  PythonAnywhere's default WSGI file to /var/www.
- `webapps/<domain>/` GET, PATCH (python_version, source_directory, virtualenv_path, force_https;
  form or JSON). A GET of a web app that does not exist answers **403** with Django REST
  framework's 63-byte permission-denied body, as in the recorded real session in
  caktus/dsd-pythonanywhere (developer_resources/api-exploration.ipynb); the documented way to
  know which web apps exist is the list.
- A create answers 201, or **200** as in that recording (`create_status`).
- A web app's GET reports python_version as "3.10", as pythonanywhere-core 0.3.3's test data has
  it; helper_scripts' mocks (tests of github.com/pythonanywhere/helper_scripts) say "python38",
  which `existing_webapp(python_version=...)` can set.
- A reload can fail (`reload_error`): the real one pings the app with about a 20 s timeout and
  reports failure (help_pages: ReloadWebApp.md, ErrorReloadingWebApp.md; pythonanywhere-core's
  `Webapp.reload` raises on any answer that is not ok). While a reload is in progress the site
  may answer looping 302s (`reload_redirects`: seconds after a reload in which it does).
- A 2xx whose body says `{"status": "ERROR", ...}` is a failure (pythonanywhere-core's
  `Webapp.create` checks for it); `answers` makes a given call answer so, or with any status.
- `webapps/<domain>/static_files/` GET, POST (url, path) and `static_files/<id>/` GET, PATCH, PUT,
  DELETE (API.md lines 388-405); `webapps/<domain>/reload/` POST.
- `webapps/<domain>/static_headers/` and `static_headers/<id>/`, API.md lines 408-425 (added to the
  help pages in their commit 73d0520, 2020-10-05; pythonanywhere-core and helper_scripts never
  call them):
      GET     "List all the static headers for a domain."
      POST    "Create a new static header. (webapp restart required)"   url, name, value
      GET     "Get URL, name and value of a particular header."
      PUT     "Modify a static header. (webapp restart required)"       url, name, value
      PATCH   "Modify a static header. (webapp restart required)"       url, name, value
      DELETE  "Remove a static header. (webapp restart required)"
  Nothing documents the answers' fields, how `url` matches, or what `value` may hold. This
  stand-in answers as it does for static files (Django REST framework's style: the object with
  its id, 201 on a create, 204 on a delete); a POST or PUT without url, name and value, or with
  one that is not a string, is a 400 naming the field, as DRF gives it. The same holds for
  static files' url and path. "webapp restart required": the static server sends the headers
  the web app had at its last reload, on every file whose URL starts with the header's url
  (a prefix, as the static files mapping matches: this stand-in's assumption).
- A free console's proxy answers 403 to a CONNECT for a host off its allowlist
  (help_pages: 403ForbiddenError.md); `refusals[host]` gives a host that answer, or a 502.
- The rate limit (40 a minute per endpoint) answers 429 with Retry-After, as Django REST
  framework's throttling does; `throttle(n)` makes the next n API requests hit it.

The web apps themselves run as on PythonAnywhere: a reload starts real uWSGI on the WSGI file in
/var/www, with the Python of the web app's virtualenv and no environment variables of the console,
its output going to /var/log/<domain>.error.log. https://<domain>/ is served through the mapped
static folders, then uWSGI. Clients reach everything through a CONNECT proxy (as free accounts do)
that sends *.pythonanywhere.com here and everything else (PyPI, for pip) to the real host.
"""

import http.client
import http.server
import json
import os
import re
import select
import shutil
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import certifi

from . import servers

REGIONS = {"www.pythonanywhere.com": "pythonanywhere.com", "eu.pythonanywhere.com": "eu.pythonanywhere.com"}
PYTHONS = ("python310", "python311", "python312", "python313")
API_PATH = re.compile(
    r"/api/v0/user/(?P<user>[^/]+)/webapps/"
    r"(?:(?P<domain>[^/]+)/(?:(?P<action>reload|static_files|static_headers)/(?:(?P<id>\d+)/)?)?)?"
)
# Django REST framework's permission-denied body as the real API sent it: 63 bytes, compact JSON.
PERMISSION_DENIED = b'{"detail":"You do not have permission to perform this action."}'
DEFAULT_WSGI = """# This file contains the WSGI configuration required to serve up your
# web application at http://{domain}/
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"Hello from PythonAnywhere's default WSGI file"]
"""
# uWSGI (pyuwsgi) inside the virtualenv's own Python, as PythonAnywhere's uWSGI uses it.
RUN_UWSGI = "import sys; from pyuwsgi import run; sys.argv[0] = 'uwsgi'; sys.exit(run())"


class FakePythonAnywhere:
    def __init__(self, workdir: Path, home: Path, user: str, token: str, region_host: str):
        self.workdir, self.home, self.user = workdir, home, user
        self.root = workdir / "root"  # stands in for /: var/www, var/log
        self.accounts = {(region_host, token): user}
        self.region_domain = REGIONS[region_host]
        self.pythons = set(PYTHONS)
        self.processes = 1  # web workers: 1 on a free account, 2 or more on paid ones
        self.lock = threading.Lock()
        self.reset()
        ca, key, cert = servers.make_certificates(
            workdir, "DNS:*.pythonanywhere.com,DNS:*.eu.pythonanywhere.com"
        )
        # Clients must trust this stand-in and still everything they trusted: REQUESTS_CA_BUNDLE
        # replaces what requests (and pip without a cert of its own) would trust, which may hold
        # a TLS-intercepting proxy's CA.
        self.ca_bundle = workdir / "ca-bundle.pem"
        self.ca_bundle.write_text(trusted_already() + ca.read_text())
        self.pyuwsgi_only = self._pyuwsgi_only()

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        fake = self

        class Handler(_Handler):
            pythonanywhere = fake

        self.https = _TLSServer(("127.0.0.1", 0), Handler)
        self.https.context = context
        self.proxy = _ConnectProxy(("127.0.0.1", 0), _Tunnel)
        self.proxy.routes = lambda host: (
            ("127.0.0.1", self.https.server_address[1]) if host.endswith("pythonanywhere.com") else None
        )
        self.proxy.refused = lambda host: self.refusals.get(host)
        for server in (self.https, self.proxy):
            threading.Thread(target=server.serve_forever, daemon=True).start()

    def reset(self) -> None:
        """A new account: no web apps, no requests seen; files in /var/www and /var/log go."""
        if hasattr(self, "apps"):
            for domain in list(self.apps):
                self._stop(domain)
        self.webapps: dict[str, dict] = {}
        self.static_files: dict[str, list[dict]] = {}
        self.static_headers: dict[str, list[dict]] = {}
        self.served_headers: dict[str, list[dict]] = {}  # each web app's, as of its last reload
        self.apps: dict[str, tuple[subprocess.Popen, int]] = {}
        self.requests: list[tuple[str, str, dict]] = []
        self.throttled = 0
        self.create_status = 201
        self.reload_error: tuple[int, object] | None = None  # (status, body) of a failed reload
        self.reload_redirects = 0.0  # seconds after a reload in which the site answers 302s
        self.reloaded_at = 0.0
        self.redirects_sent = 0
        # (method, path below /api/v0/user/<user>/) -> the (status, body) answered instead.
        self.answers: dict[tuple[str, str], tuple[int, object]] = {}
        # host -> the raw answer the console's proxy gives a CONNECT to it instead of a tunnel.
        self.refusals: dict[str, bytes] = {}
        self.next_id = 1
        shutil.rmtree(self.root, ignore_errors=True)
        (self.root / "var" / "www").mkdir(parents=True)
        (self.root / "var" / "log").mkdir(parents=True)

    def close(self) -> None:
        self.reset()
        for server in (self.https, self.proxy):
            server.shutdown()
            server.server_close()

    def client_env(self, token: str, **extra: str) -> dict[str, str]:
        """The environment of a Bash console of this account, reaching out through the proxy."""
        proxy = f"http://127.0.0.1:{self.proxy.server_address[1]}"
        env = servers.app_env(None)
        env.update(
            HOME=str(self.home), API_TOKEN=token, PYTHONANYWHERE_USERNAME=self.user,
            PYTHONANYWHERE_SITE=next(host for host, _ in self.accounts),
            https_proxy=proxy, HTTPS_PROXY=proxy, REQUESTS_CA_BUNDLE=str(self.ca_bundle),
            # The real pip cache: a fake HOME must not mean downloading every wheel again.
            PIP_CACHE_DIR=os.environ.get("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip")),
        )  # fmt: skip
        env.pop("NO_PROXY", None)
        env.pop("no_proxy", None)
        env.update(extra)
        return env

    def existing_webapp(self, domain: str, wsgi: str, **fields) -> None:
        """A web app made earlier, on the Web tab or by another tool, with its own WSGI file."""
        status, body, _ = self._create({"domain_name": domain, "python_version": "python310"})
        assert status == self.create_status, body
        self.webapps[domain].update(fields)
        self.wsgi_file(domain).write_text(wsgi)

    def throttle(self, count: int) -> None:
        self.throttled = count

    def wsgi_file(self, domain: str) -> Path:
        return self.root / "var" / "www" / (domain.replace(".", "_") + "_wsgi.py")

    def error_log(self, domain: str) -> Path:
        return self.root / "var" / "log" / f"{domain}.error.log"

    def requested(self) -> list[tuple[str, str]]:
        """Each API request seen: (method, path below /api/v0/user/<user>/)."""
        prefix = f"/api/v0/user/{self.user}/"
        return [(method, path.removeprefix(prefix)) for method, path, _ in self.requests]

    # The API

    def api(self, method: str, host: str, path: str, headers, body: bytes) -> tuple[int, object, dict]:
        scheme, _, token = (headers.get("Authorization") or "").partition(" ")
        user = self.accounts.get((host, token)) if scheme == "Token" else None
        if user is None:
            return 401, {"detail": "Invalid token."}, {}
        match = API_PATH.fullmatch(path)
        if match is None:
            return 404, "<h1>Not Found</h1>", {}
        if match["user"] != user:
            return 403, PERMISSION_DENIED, {"Content-Type": "application/json"}
        payload = _payload(headers, body)
        with self.lock:
            if self.throttled:
                self.throttled -= 1
                detail = "Request was throttled. Expected available in 1 second."
                return 429, {"detail": detail}, {"Retry-After": "1"}
            self.requests.append((method, path, payload))
            answer = self.answers.get((method, path.removeprefix(f"/api/v0/user/{user}/")))
            if answer is not None:
                return (*answer, {})
            return self._route(method, match, payload)

    def _route(self, method: str, match: re.Match, payload: dict) -> tuple[int, object, dict]:
        domain, action, mapping_id = match["domain"], match["action"], match["id"]
        if domain is None:
            if method == "GET":
                return 200, list(self.webapps.values()), {}
            if method == "POST":
                return self._create(payload)
            return 405, {"detail": f'Method "{method}" not allowed.'}, {}
        webapp = self.webapps.get(domain)
        if webapp is None:
            return 403, PERMISSION_DENIED, {"Content-Type": "application/json"}
        if action is None:
            if method == "GET":
                return 200, webapp, {}
            if method in ("PATCH", "PUT"):
                fields = ("python_version", "source_directory", "virtualenv_path")
                webapp.update({key: payload[key] for key in fields if key in payload})
                if "force_https" in payload:
                    webapp["force_https"] = _boolean(payload["force_https"])
                return 200, webapp, {}
            return 405, {"detail": f'Method "{method}" not allowed.'}, {}
        if action == "reload" and method == "POST":
            self._start(domain)
            self.reloaded_at = time.monotonic()
            self.served_headers[domain] = [dict(header) for header in self.static_headers[domain]]
            if self.reload_error is not None:
                return (*self.reload_error, {})
            return 200, {"status": "OK"}, {}
        if action == "static_files":
            return self._objects(self.static_files[domain], ("url", "path"), method, mapping_id, payload)
        if action == "static_headers":
            fields = ("url", "name", "value")
            return self._objects(self.static_headers[domain], fields, method, mapping_id, payload)
        return 405, {"detail": f'Method "{method}" not allowed.'}, {}

    def _create(self, payload: dict) -> tuple[int, object, dict]:
        domain, python = payload.get("domain_name", ""), payload.get("python_version", "")
        own = f"{self.user}.{self.region_domain}".lower()
        if domain != own:
            message = f"The only .pythonanywhere.com address you can register is {own}"
            return 400, _error("domain_name_error", message), {}
        if domain in self.webapps:
            return 400, _error("domain_name_error", f"You already have a web app for {domain}"), {}
        if python not in self.pythons:
            return 400, {"python_version": [f'"{python}" is not a valid choice.']}, {}
        self.webapps[domain] = {
            "id": self._id(), "user": self.user, "domain_name": domain,
            "python_version": f"{python[6]}.{python[7:]}",
            "source_directory": f"/home/{self.user}/", "working_directory": f"/home/{self.user}/",
            "virtualenv_path": "", "expiry": "2027-02-25", "force_https": False,
        }  # fmt: skip
        self.static_files[domain] = []
        self.static_headers[domain] = []
        self.wsgi_file(domain).write_text(DEFAULT_WSGI.format(domain=domain))
        return self.create_status, self.webapps[domain], {}

    def _objects(self, objects: list[dict], fields: tuple[str, ...], method, object_id, payload):
        """A web app's static files mappings or static headers: a list of objects with ``fields``."""
        allowed = ("GET", "POST") if object_id is None else ("GET", "PUT", "PATCH", "DELETE")
        if method not in allowed:
            return 405, {"detail": f'Method "{method}" not allowed.'}, {}
        if object_id is None:
            found = None
        else:
            found = next((item for item in objects if item["id"] == int(object_id)), None)
            if found is None:
                return 404, {"detail": "Not found."}, {}
        if method == "GET":
            return 200, objects if found is None else found, {}
        if method == "DELETE":
            objects.remove(found)
            return 204, None, {}
        # A create or a PUT needs every field, a PATCH any of them; each a string.
        wrong = {
            key: ["This field is required."] if key not in payload else ["Not a valid string."]
            for key in fields
            if (key in payload or method != "PATCH") and not isinstance(payload.get(key), str)
        }
        if wrong:
            return 400, wrong, {}
        given = {key: payload[key] for key in fields if key in payload}
        if found is None:
            found = {"id": self._id(), **given}
            objects.append(found)
            return 201, found, {}
        found.update(given)
        return 200, found, {}

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id

    # The web apps

    def _start(self, domain: str) -> None:
        self._stop(domain)
        webapp = self.webapps[domain]
        python = Path(webapp["virtualenv_path"] or "/nonexistent") / "bin" / "python"
        port = servers.free_port()
        command = [
            str(python), "-c", RUN_UWSGI, "--http11-socket", f"127.0.0.1:{port}",
            "--wsgi-file", str(self.wsgi_file(domain)), "--master",
            "--processes", str(self.processes), "--die-on-term", "--disable-logging",
        ]  # fmt: skip
        # A web app gets none of a console's variables, only PythonAnywhere's own: API_TOKEN and
        # the proxy settings (help pages EnvironmentVariables, API, 403ForbiddenError). The
        # proxy is left out: this stand-in's services are on loopback.
        token = next(token for (_, token), user in self.accounts.items() if user == self.user)
        env = {"HOME": str(self.home), "PATH": os.environ["PATH"], "LANG": "C.UTF-8",
               "PYTHONPATH": str(self.pyuwsgi_only), "API_TOKEN": token}  # fmt: skip
        with self.error_log(domain).open("a") as log:
            process = subprocess.Popen(command, cwd=self.home, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.apps[domain] = (process, port)
        servers.wait_for_port(port, process, f"uWSGI for {domain}", seconds=20)

    def _stop(self, domain: str) -> None:
        process, _ = self.apps.pop(domain, (None, None))
        if process is not None:
            servers.stop(process)

    def site(self, method: str, domain: str, path: str, headers, body: bytes):
        if time.monotonic() < self.reloaded_at + self.reload_redirects:
            with self.lock:
                self.redirects_sent += 1
            return 302, b"", {"Location": f"https://{domain}{path}"}  # back to itself: a loop
        for mapping in sorted(self.static_files.get(domain, []), key=lambda m: -len(m["url"])):
            if path.startswith(mapping["url"]):
                status, body, headers = self._static(mapping, urlsplit(path).path[len(mapping["url"]) :])
                for header in self.served_headers.get(domain, []):
                    if status == 200 and urlsplit(path).path.startswith(header["url"]):
                        headers[header["name"]] = header["value"]
                return status, body, headers
        if domain not in self.apps:
            return 404, "<h1>Coming Soon!</h1><p>This is going to be a PythonAnywhere site.</p>", {}
        _, port = self.apps[domain]
        forwarded = {k: v for k, v in headers.items() if k.lower() not in _HOP_BY_HOP}
        forwarded["X-Forwarded-Proto"] = "https"
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            connection.request(method, path, body=body or None, headers=forwarded)
            response = connection.getresponse()
            kept = {k: v for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP}
            return response.status, response.read(), kept
        except OSError:
            return 502, "<h1>Something went wrong :-(</h1>", {}
        finally:
            connection.close()

    def _static(self, mapping: dict, rest: str):
        base = Path(mapping["path"]).resolve()
        target = (base / rest).resolve()
        if base not in target.parents or not target.is_file():
            return 404, "<h1>Not Found</h1>", {}
        kind = {".css": "text/css", ".js": "text/javascript"}.get(target.suffix, "application/octet-stream")
        return 200, target.read_bytes(), {"Content-Type": kind}

    def _pyuwsgi_only(self) -> Path:
        """A folder holding pyuwsgi and nothing else, for a virtualenv's PYTHONPATH."""
        import pyuwsgi

        folder = self.workdir / "pyuwsgi-only"
        folder.mkdir(exist_ok=True)
        source = Path(pyuwsgi.__file__)
        for item in (source, source.with_name("pyuwsgi.libs")):
            if item.exists() and not (folder / item.name).exists():
                (folder / item.name).symlink_to(item)
        return folder


_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}


def _error(kind: str, message: str) -> dict:
    return {"status": "ERROR", "error_type": kind, "error_message": message}


def _boolean(value) -> bool:
    return value is True or str(value).lower() in ("true", "1", "on", "yes")


def _payload(headers, body: bytes) -> dict:
    if not body:
        return {}
    if (headers.get("Content-Type") or "").startswith("application/json"):
        return json.loads(body)
    return dict(parse_qsl(body.decode()))


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    pythonanywhere: FakePythonAnywhere

    def _answer(self) -> None:
        fake = self.pythonanywhere
        host = (self.headers.get("Host") or "").partition(":")[0].lower()
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if host in REGIONS:
            status, content, headers = fake.api(self.command, host, self.path, self.headers, body)
        else:
            status, content, headers = fake.site(self.command, host, self.path, self.headers, body)
        if content is None:
            data, kind = b"", None
        elif isinstance(content, bytes):
            data, kind = content, None
        elif isinstance(content, str):
            data, kind = content.encode(), "text/html; charset=utf-8"
        else:
            data, kind = json.dumps(content).encode(), "application/json"
        self.send_response(status)
        if kind and "Content-Type" not in headers:
            self.send_header("Content-Type", kind)
        for name, value in headers.items():
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _answer

    def log_message(self, *args) -> None:
        pass


class _TLSServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    context: ssl.SSLContext

    def finish_request(self, request, client_address) -> None:
        # The TLS handshake happens in the request's own thread, never in the accept loop.
        with self.context.wrap_socket(request, server_side=True) as tls:
            super().finish_request(tls, client_address)

    def handle_error(self, request, client_address) -> None:
        pass  # a client that hangs up mid-handshake is not the test's concern


class _ConnectProxy(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    routes = staticmethod(lambda host: None)
    refused = staticmethod(lambda host: None)  # the answer instead of a tunnel, or None

    def handle_error(self, request, client_address) -> None:
        pass


class _Tunnel(socketserver.BaseRequestHandler):
    """HTTPS through a proxy: CONNECT host:port, then bytes both ways."""

    def handle(self) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.request.recv(4096)
            if not chunk:
                return
            head += chunk
        method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
        host, _, port = target.rpartition(":")
        if method != "CONNECT":
            self.request.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        refusal = self.server.refused(host)
        if refusal is not None:  # off the allowlist of a free console's proxy
            self.request.sendall(refusal)
            return
        address = self.server.routes(host) or (host, int(port))
        try:
            upstream = socket.create_connection(address, timeout=30)
        except OSError:
            self.request.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        self.request.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        with upstream:
            sockets = [self.request, upstream]
            while True:
                readable, _, _ = select.select(sockets, [], [], 60)
                if not readable:
                    return
                for source in readable:
                    try:
                        data = source.recv(65536)
                        if data:
                            (upstream if source is self.request else self.request).sendall(data)
                    except OSError:
                        data = b""
                    if not data:
                        return


def trusted_already() -> str:
    """Every CA this machine's clients trust now, as one PEM text: the stand-in's CA is added to
    them, never put in their place (a TLS-intercepting proxy's CA may be in any of them).

    pip's configured cert (PIP_CERT or its config files), REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE,
    SSL_CERT_FILE and OpenSSL's default file, each file of SSL_CERT_DIR and of OpenSSL's default
    directory, and certifi's bundle.
    """
    defaults = ssl.get_default_verify_paths()  # honours SSL_CERT_FILE and SSL_CERT_DIR
    files = [*pip_certs(), *(os.environ.get(name) for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")),
             os.environ.get("SSL_CERT_FILE"), defaults.cafile, certifi.where()]  # fmt: skip
    folders = [*os.environ.get("SSL_CERT_DIR", "").split(os.pathsep), defaults.capath]
    for folder in filter(None, folders):
        if Path(folder).is_dir():
            files += sorted(str(path) for path in Path(folder).iterdir())
    certificates: dict[str, None] = {}  # each once, in the order found
    for file in filter(None, files):
        try:
            text = Path(file).read_bytes().decode("ascii", errors="ignore")
        except OSError:  # a folder, a broken link, a file we may not read
            continue
        certificates.update(dict.fromkeys(PEM_CERTIFICATE.findall(text)))
    return "".join(f"{certificate}\n" for certificate in certificates)


PEM_CERTIFICATE = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


def pip_certs() -> list[str]:
    """The cert pip uses: PIP_CERT, else `cert` in its config files (`pip config list` reads them
    as pip does, PIP_CONFIG_FILE included)."""
    if os.environ.get("PIP_CERT"):
        return [os.environ["PIP_CERT"]]
    listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True)
    return re.findall(r"^[\w:.-]*\.cert='(.*)'$", listed.stdout, flags=re.M)  # e.g. global.cert='...'


def python_tag() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"
