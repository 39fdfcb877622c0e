"""The parts of deploy.py that run without PythonAnywhere. (The template's own tests run all of it
against a stand-in for PythonAnywhere's API and web servers.)"""

import pytest

import deploy


def test_wsgi_file_points_at_this_project():
    text = deploy.wsgi_source()
    assert f'DEFAULT_HOME = "{deploy.PROJECT}"' in text
    compile(text, "wsgi.py", "exec")


def test_no_api_token_stops_before_anything(monkeypatch, capsys):
    monkeypatch.delenv("API_TOKEN", raising=False)
    monkeypatch.delenv(deploy.IN_VIRTUALENV, raising=False)
    assert deploy.main(["--dry-run"]) == 1
    assert capsys.readouterr().err.startswith("deploy.py: API_TOKEN is not set")


@pytest.mark.parametrize(
    "host, local",
    [("127.0.0.1", True), ("127.0.1.1", True), ("localhost", True), ("::1", True),
     ("eu1-example.upstash.io", False), ("redis-12345.c1.cloud.redislabs.com", False)],
)  # fmt: skip
def test_servers_on_this_machine_are_refused(host, local):
    assert deploy.is_local(host) is local


def test_an_unknown_api_host_is_named(monkeypatch, capsys):
    monkeypatch.setenv("API_TOKEN", "token")
    monkeypatch.setenv("PYTHONANYWHERE_SITE", "pythonanywhere.example")
    monkeypatch.delenv(deploy.IN_VIRTUALENV, raising=False)
    assert deploy.main(["--dry-run"]) == 1
    assert "PYTHONANYWHERE_SITE='pythonanywhere.example' is not a PythonAnywhere API host" in (
        capsys.readouterr().err
    )


def test_no_test_only_option_is_advertised(capsys):
    with pytest.raises(SystemExit):
        deploy.main(["--help"])
    shown = capsys.readouterr().out
    assert "--dry-run" in shown and "--root" not in shown
    assert "DEPLOY_TEST" not in (deploy.PROJECT / "deploy.py").read_text()  # no switch by env
