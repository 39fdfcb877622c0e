"""The app factory: settings from the environment, the cache, your pages."""

import os
from collections.abc import Mapping

from flask import Flask

from . import cache, settings, views

PROJECT_NAME = {{ cookiecutter.project_name | python_string }}


def create_app(
    test_config: Mapping[str, object] | None = None, environ: Mapping[str, str] = os.environ
) -> Flask:
    """Build the app. Its settings come from ``environ``: .env, which the WSGI file (and `flask`)
    loads. ``test_config`` wins over it and is checked the same way (tests use it)."""
    app = Flask(__name__, instance_relative_config=True)
    overrides = dict(test_config or {})
    given: dict[str, object] = {**environ, **overrides}
    app.config.from_mapping(overrides)  # as given, for anything no parser reads
    app.config.from_mapping(settings.from_env(given, debug=app.debug))
    app.config["PROJECT_NAME"] = PROJECT_NAME
    missing = settings.missing_env_file() if app.debug and not app.testing else ""
    # Said once: `flask run --debug` builds the app again in a child process, which serves.
    if missing and not os.environ.get("WERKZEUG_RUN_MAIN"):
        app.logger.warning("%s", missing)
    # The cache reads its own settings, and adds /health, the error pages and `flask cache`.
    cache.init_app(app, given)
    app.register_blueprint(views.bp)  # the demo: delete it, and this line
    return app
