"""CACHE_TYPE=upstash: the Redis backend over Upstash's HTTPS REST API (upstash_rest.py)."""

import re
from typing import Any
from urllib.parse import urlsplit

from flask import Flask

from ..config import ConfigError, Env, redact_url
from .base import Config, Errors
from .redis import UPSTASH_QUOTA, Redis

_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+\Z")


class Upstash(Redis):
    """The Redis backend, its scoped clear included, over Upstash's HTTPS REST API
    (upstash_rest.py): the shared cache a free account can reach, through its proxy."""

    name = "upstash"
    requires = "requests"
    needs_paid_account = False
    tracks = False  # a REST API pushes nothing: CACHE_NEAR_TTL is its near cache
    variables = ("UPSTASH_REDIS_REST_URL", "UPSTASH_REDIS_REST_TOKEN")

    @classmethod
    def settings(cls, env: Env) -> dict[str, object]:
        """Upstash's own names for its REST URL and token (the database page, REST API section)."""
        needed_by = f"CACHE_TYPE={cls.name}"
        accepted = "use the database's REST URL, https://<name>.upstash.io"
        url = env.url(
            "UPSTASH_REDIS_REST_URL", needed_by, schemes=("https", "http"), accepted=accepted
        )
        parts = urlsplit(url)
        # Commands are POSTed to the URL and its paths: no user (a rediss:// URL pasted with
        # https://, its password showing), query or path of its own.
        if "@" in parts.netloc or parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ConfigError(
                f"UPSTASH_REDIS_REST_URL={redact_url(url)!r} is not valid: {accepted}"
            )
        token = env.required(
            "UPSTASH_REDIS_REST_TOKEN",
            needed_by,
            "copy the token from the database's REST API section on console.upstash.com",
        )
        if not _VISIBLE_ASCII.match(token):  # it goes in an HTTP header; never shown
            raise ConfigError(
                "UPSTASH_REDIS_REST_TOKEN is not valid: it may only have ASCII letters, digits "
                "and punctuation, and has another character (a space, a curly quote or an "
                "invisible one pasted with it?): copy it again from console.upstash.com"
            )
        return {"UPSTASH_REDIS_REST_URL": url, "UPSTASH_REDIS_REST_TOKEN": token}

    @classmethod
    def factory(
        cls, app: Flask, config: dict[str, Any], args: list[Any], kwargs: dict[str, Any]
    ) -> "Redis":
        from .upstash_rest import UpstashRedis

        client = UpstashRedis(
            config["UPSTASH_REDIS_REST_URL"],
            config["UPSTASH_REDIS_REST_TOKEN"],
            config["CACHE_SOCKET_TIMEOUT"],
        )
        return cls._signed(client, config, kwargs)

    @classmethod
    def errors(cls) -> Errors:
        from .upstash_rest import UpstashCommandError, UpstashConnectionLost, UpstashError

        return Errors(
            unreachable=(UpstashError,),
            # urllib3 replaces a pooled connection it sees closed before it reuses it, not one
            # that is reset under the request.
            closed=(UpstashConnectionLost,),
            refusals={UpstashCommandError: UPSTASH_QUOTA},
        )

    @classmethod
    def advice(cls, error: BaseException) -> str:
        # Redis's would import redis-py, which an upstash project may lack; the REST client's
        # own errors name the setting to fix (a refused token: UPSTASH_REDIS_REST_TOKEN).
        return ""

    @classmethod
    def secrets(cls, config: Config) -> list[str]:
        return [config["UPSTASH_REDIS_REST_TOKEN"]]

    def forked(self) -> None:
        self.client.forked()  # redis-py's pools notice a new process themselves; requests' do not
