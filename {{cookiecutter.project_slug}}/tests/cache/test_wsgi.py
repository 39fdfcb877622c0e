import os
import subprocess
import sys
from pathlib import Path

import {{ cookiecutter.package_name }} as package

ROOT = Path(__file__).resolve().parents[2]

SERVE_HEALTH = """
import runpy
from werkzeug.test import Client
application = runpy.run_path({wsgi!r})["application"]
response = Client(application).get("/health")
print(response.status_code, response.get_data(as_text=True))
"""


def test_wsgi_file_loads_env_and_serves_from_another_directory(tmp_path):
    # A project home as on PythonAnywhere: the package and a .env, imported from elsewhere.
    home = tmp_path / "home"
    home.mkdir()
    package_dir = Path(package.__file__).parent
    (home / package_dir.name).symlink_to(package_dir)
    (home / ".env").write_text("SECRET_KEY=from-dotenv\nCACHE_TYPE=null\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CACHE_", "SECRET_KEY"))}
    env.update(PROJECT_HOME=str(home), PYTHONPATH="")
    script = SERVE_HEALTH.format(wsgi=str(ROOT / "pythonanywhere_wsgi.py"))
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=elsewhere, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("200 ")
    assert '"backend":"null"' in result.stdout.replace(" ", "")


def test_wsgi_file_points_at_the_pythonanywhere_home():
    text = (ROOT / "pythonanywhere_wsgi.py").read_text()
    # Two lines, as each name may be long.
    user = "{{ cookiecutter.pythonanywhere_username }}"
    assert f'DEFAULT_HOME = "/home/{user}/{{ cookiecutter.project_slug }}"' in text
