"""Results-root URIs: the only form of a root that is ever shown, and the boto3 client an ``s3://`` root implies.

A root may carry credentials, as pyarrow's URIs allow: ``s3://KEY:SECRET@bucket/path?endpoint_override=host:9000``
or ``?access_key=...&secret_key=...&session_token=...``. They must never reach a file, a log line or an error
message, so:

- ``redact_uri(root)`` is what every log line, status file, lock and error message shows of a root: the userinfo
  becomes ``***`` and so does the value of every query parameter whose name contains key, secret, token, password
  or credential. Everything else (bucket, path, endpoint, region) stays, so the message still says where.
- ``scrub(text, root)`` removes a root's secrets from any text (an exception's message, a traceback) before it is
  written or printed: the root itself becomes its redacted form, and each secret of 8 characters or more (real
  access keys are 20, secrets 40) becomes ``***`` wherever it appears, raw or percent-decoded. Shorter values are
  only removed as part of the whole root: replacing every "test" in a message would mangle it.

The preferred way to give credentials is not the URI but the standard AWS environment variables
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``) or a profile, which pyarrow and boto3 both
read on every node.

Example::

    >>> redact_uri("s3://AKIAEXAMPLE:abc/def@sweeps/results?endpoint_override=127.0.0.1:9000&secret_key=x")
    's3://***@sweeps/results?endpoint_override=127.0.0.1:9000&secret_key=***'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

REDACTED = "***"
SECRET_WORDS = ("key", "secret", "token", "password", "credential")
"""A query parameter whose name contains one of these carries a secret (access_key, secret_key, session_token...)."""
_MIN_SCRUB_LENGTH = 8


def _split(root: str) -> tuple[str, str, str, str]:
    """``(scheme, userinfo, location, query)`` of ``scheme://userinfo@location?query``. Userinfo is everything
    before the last ``@``, so a secret with an unencoded ``/``, ``?`` or ``@`` is still all userinfo (pyarrow's
    query parameters never hold an ``@``)."""
    scheme, _, tail = root.partition("://")
    userinfo, at, rest = tail.rpartition("@")
    location, _, query = rest.partition("?")
    return scheme, userinfo if at else "", location, query


def child_root(root: str, name: str) -> str:
    """The root of folder ``name`` inside ``root``: a path joined, or a URI's path extended before its query
    (``s3://k:s@b/x?endpoint_override=h`` -> ``s3://k:s@b/x/NAME?endpoint_override=h``)."""
    if "://" not in root:
        return str(Path(root) / name)
    head, question, query = root.partition("?") if "@" not in root.rpartition("?")[2] else (root, "", "")
    return f"{head.rstrip('/')}/{name}{question}{query}"


def is_secret_parameter(name: str) -> bool:
    return any(word in name.lower() for word in SECRET_WORDS)


def redact_uri(root: str) -> str:
    """``root`` with its credentials replaced by ``***``; a local path (no ``://``) is returned as it is."""
    if "://" not in root:
        return root
    scheme, userinfo, location, query = _split(root)
    shown = f"{scheme}://{REDACTED + '@' if userinfo else ''}{location}"
    if not query:
        return shown
    parameters = []
    for parameter in query.split("&"):
        name, equals, _ = parameter.partition("=")
        parameters.append(f"{name}={REDACTED}" if equals and is_secret_parameter(unquote(name)) else parameter)
    return f"{shown}?{'&'.join(parameters)}"


def secrets_of(root: str) -> list[str]:
    """The credentials ``root`` carries (userinfo, its parts, secret query values), raw and percent-decoded."""
    if "://" not in root:
        return []
    _, userinfo, _, query = _split(root)
    values = [userinfo, *userinfo.split(":", 1)] if userinfo else []
    values += [value for name, equals, value in (p.partition("=") for p in query.split("&")) if equals and is_secret_parameter(unquote(name))]
    found = {form for value in values for form in (value, unquote(value)) if form}
    return sorted(found, key=len, reverse=True)


def scrub(text: str, root: str) -> str:
    """``text`` with ``root`` shown redacted and each of its long-enough secrets replaced by ``***``."""
    if "://" not in root or not text:
        return text
    text = text.replace(root, redact_uri(root))
    for secret in secrets_of(root):
        if len(secret) >= _MIN_SCRUB_LENGTH:
            text = text.replace(secret, REDACTED)
    return text


@dataclass(frozen=True)
class SecretRoot:
    """A results root handed to code that records what it is given: it pickles whole (workers use ``.root``) but
    prints redacted. Ray Train keeps ``str()`` of each ``train_loop_config`` value in its run state (the
    dashboard's Train API, and export-event files under the Ray session when Ray's export API is on)."""

    root: str

    def __str__(self) -> str:
        return redact_uri(self.root)

    def __repr__(self) -> str:
        return f"SecretRoot({redact_uri(self.root)!r})"


def s3_client_options(root: str) -> dict[str, Any]:
    """Keyword arguments for ``boto3.client("s3", ...)`` that reach the same store as pyarrow's ``S3FileSystem``
    for ``root``: endpoint (``endpoint_override`` + ``scheme``), region, and credentials from the userinfo or the
    query. Absent ones are left to boto3's own chain (environment variables, profiles, instance roles)."""
    _, userinfo, _, query = _split(root)
    parameters = dict(parse_qsl(query, keep_blank_values=True))
    options: dict[str, Any] = {}
    if userinfo:
        access_key, _, secret_key = userinfo.partition(":")
        options |= {"aws_access_key_id": unquote(access_key), "aws_secret_access_key": unquote(secret_key)}
    for parameter, option in (("access_key", "aws_access_key_id"), ("secret_key", "aws_secret_access_key"),
                              ("session_token", "aws_session_token"), ("region", "region_name")):  # fmt: skip
        if parameters.get(parameter):
            options[option] = parameters[parameter]
    if parameters.get("endpoint_override"):
        endpoint = parameters["endpoint_override"]
        options["endpoint_url"] = endpoint if "://" in endpoint else f"{parameters.get('scheme', 'https')}://{endpoint}"
    if parameters.get("tls_ca_file_path"):
        options["verify"] = parameters["tls_ca_file_path"]
    return options
