"""The app factory: settings from the environment, the cache, the pages."""

import os
from collections.abc import Mapping

from flask import Flask

from . import cache, settings, views

PROJECT_NAME = {{ cookiecutter.project_name | tojson }}


def create_app(overrides: Mapping[str, object] | None = None) -> Flask:
    """Build the app from the environment; ``overrides`` win over it (tests use them)."""
    app = Flask(__name__, instance_relative_config=True)
    overrides = dict(overrides or {})
    app.config.update(overrides)
    app.config.update(
        settings.from_env(
            {**os.environ, **overrides},
            instance_path=app.instance_path,
            default_key_prefix=f"{__name__}:",
            debug=app.debug,
        )
    )
    app.config["PROJECT_NAME"] = PROJECT_NAME
    cache.init_app(app)
    app.register_blueprint(views.bp)
    return app
