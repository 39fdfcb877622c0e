"""The app factory: settings from the environment, the cache, the pages."""

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
    app.config.from_mapping(overrides)  # as given, for anything no parser reads
    app.config.from_mapping(settings.from_env({**environ, **overrides}, debug=app.debug))
    app.config["PROJECT_NAME"] = PROJECT_NAME
    cache.init_app(app)
    app.register_blueprint(views.bp)
    return app
