"""Configuration values named like secrets never reach the run database.

A value is secret when a word of its key (split at ``_ . -`` and case changes) contains
``password``, ``passwd``, ``secret`` or ``token``, or is ``key`` after another word (``api_key``,
``AWS_SECRET_ACCESS_KEY``, ``private_key``), and the key does not end in ``file``, ``path`` or
``dir`` (``key_file``, a path, is no secret; nor is ``cluster.tls.key``, the path of a PEM file).

The database keeps ``<redacted salt:digest>``: a salted SHA-256 of the value, so that a resume
can tell the same secret from another. ``runs resume`` takes each one again from the environment
variable named after its key (``cluster.kubernetes.env.AWS_SECRET_ACCESS_KEY`` from
``$AWS_SECRET_ACCESS_KEY``) and refuses in one line when it is missing or not the same value.
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import Any, Mapping

from sdpflow.errors import InputError

SECRET_WORDS = ("password", "passwd", "secret", "token")
NOT_SECRET_LAST_WORDS = ("file", "path", "dir")
_PLACEHOLDER = re.compile(r"^<redacted ([0-9a-f]{16}):([0-9a-f]{64})>$")


def key_words(name: str) -> list[str]:
    """``AWS_SECRET_ACCESS_KEY`` → aws secret access key; ``apiToken`` → api token."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", str(name))
    return [word.lower() for word in re.split(r"[^A-Za-z0-9]+", spaced) if word]


def is_secret_name(name: str) -> bool:
    words = key_words(name)
    if not words or words[-1] in NOT_SECRET_LAST_WORDS:
        return False
    return any(any(secret in word for secret in SECRET_WORDS) for word in words) or "key" in words[1:]


def redact_secrets(config: Any) -> Any:
    """A copy of ``config`` (JSON-like) with every secret-named string replaced by its placeholder."""
    if isinstance(config, Mapping):
        return {key: (_placeholder(value) if is_secret_name(key) and isinstance(value, str) and value
                      else redact_secrets(value)) for key, value in config.items()}
    if isinstance(config, list):
        return [redact_secrets(value) for value in config]
    return config


def restore_secrets(config: Any, where: str, environ: Mapping[str, str] | None = None) -> Any:
    """``config`` with each placeholder replaced by the value of the environment variable named
    after its key; :class:`InputError` naming the key when it is unset or holds another value."""
    environ = os.environ if environ is None else environ
    if isinstance(config, Mapping):
        return {key: _restored(key, value, where, environ) if isinstance(value, str) and _PLACEHOLDER.match(value)
                else restore_secrets(value, where, environ) for key, value in config.items()}
    if isinstance(config, list):
        return [restore_secrets(value, where, environ) for value in config]
    return config


def _placeholder(value: str) -> str:
    salt = os.urandom(8).hex()
    return f"<redacted {salt}:{_digest(salt, value)}>"


def _digest(salt: str, value: str) -> str:
    return hashlib.sha256(f"{salt}:{value}".encode()).hexdigest()


def _restored(key: str, placeholder: str, where: str, environ: Mapping[str, str]) -> str:
    salt, digest = _PLACEHOLDER.match(placeholder).groups()
    variable = re.sub(r"[^A-Za-z0-9]+", "_", str(key)).upper()
    value = environ.get(variable)
    if value is None:
        raise InputError(f"{where}: the secret {key} is not kept in the run database: set ${variable} to it "
                         "again to resume")
    if _digest(salt, value) != digest:
        raise InputError(f"{where}: ${variable} is not the {key} the run started with: set it to that value "
                         "to resume (or start a new run)")
    return value


#: How a stored secret is shown (``runs show``, ``sdpflow ui``): its salted digest is of no use to a reader.
SHOWN_SECRET = "<redacted>"


def shown_secrets(config: Any) -> Any:
    """A copy of a stored configuration for display: each placeholder (and any secret-named value) as ``<redacted>``."""
    if isinstance(config, Mapping):
        return {key: (SHOWN_SECRET if isinstance(value, str) and value and (is_secret_name(key) or _PLACEHOLDER.match(value))
                      else shown_secrets(value)) for key, value in config.items()}
    if isinstance(config, list):
        return [shown_secrets(value) for value in config]
    return config


def without_secrets(config: Any, prefix: str = "") -> tuple[Any, list[str]]:
    """A copy of a configuration with every secret-named value left out, and the dotted keys left out.

    What ``config.yaml`` in a run's folder holds: loadable again with ``--config`` (a key left
    out takes its default or the value given again), and no secret, not even its digest.
    """
    if isinstance(config, Mapping):
        kept: dict[str, Any] = {}
        dropped: list[str] = []
        for key, value in config.items():
            if is_secret_name(key) and isinstance(value, str) and value:
                dropped.append(f"{prefix}{key}")
                continue
            kept[key], inner = without_secrets(value, f"{prefix}{key}.")
            dropped += inner
        return kept, dropped
    return config, []
