"""WSGI entry point for PythonAnywhere.

`python3 deploy.py` writes it to
/var/www/{{ cookiecutter.pythonanywhere_username | lower }}{{ '_eu' if cookiecutter.pythonanywhere_region == 'eu' else '' }}_pythonanywhere_com_wsgi.py
(the WSGI configuration file linked from the Web tab), with DEFAULT_HOME set to where the project
is. By hand: copy this file's contents there, then reload the web app (docs/deploy.md).

Variables set in a console or in .bashrc never reach the web app (PythonAnywhere passes it only
its own, such as API_TOKEN and the proxy settings), so the settings are loaded from the
project's .env here, by absolute path, before the app is imported.
"""

import os
import sys

from dotenv import load_dotenv

# Where the project was uploaded or cloned (deploy.py rewrites this line). PROJECT_HOME overrides
# it (tests, other layouts).
DEFAULT_HOME = "/home/{{ cookiecutter.pythonanywhere_username }}/{{ cookiecutter.project_slug }}"
PROJECT_HOME = os.environ.get("PROJECT_HOME", DEFAULT_HOME)

if PROJECT_HOME not in sys.path:
    sys.path.insert(0, PROJECT_HOME)

load_dotenv(os.path.join(PROJECT_HOME, ".env"))

# Imported only now: the app needs sys.path and .env, set above.
from {{ cookiecutter.package_name }} import create_app  # noqa: E402

application = create_app()
