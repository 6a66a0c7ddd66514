"""Checks made before the server starts, each ending in one line that says what to fix.

They run before any server (gunicorn or another) is handed the settings, so a mistake never
shows up as the server's own messages (``[SSL] PEM lib (_ssl.c:3926)``, five seconds of
``Connection in use``).
"""
from __future__ import annotations

import errno
import socket
import ssl
from collections.abc import Callable
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization


class PreflightError(ValueError):
    """A start that cannot work; the message names the setting and what is wrong with it."""


def check_tls_pair(cert_path: str, key_path: str) -> None:
    """The certificate parses, the key parses, and the key is the certificate's own."""
    certificate = _read_certificate(cert_path)
    key: Any = _read_private_key(key_path)
    if key.public_key().public_bytes(*_SPKI) != certificate.public_key().public_bytes(*_SPKI):
        raise PreflightError(f"INDEX_TLS_KEY: {key_path} is not the key of the certificate "
                             f"INDEX_TLS_CERT {cert_path} (they do not match)")
    try:  # what the server will do with them; anything left is unusual enough to show as is
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert_path, key_path)
    except ssl.SSLError as exc:
        raise PreflightError(f"INDEX_TLS_CERT/INDEX_TLS_KEY: the TLS library refuses them: "
                             f"{exc.reason or exc}") from None


_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _read(path: str, setting: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise PreflightError(f"{setting}: cannot read {path}: {exc.strerror}") from None


def _read_certificate(path: str) -> x509.Certificate:
    data = _read(path, "INDEX_TLS_CERT")
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        hint = " (it holds a private key: are INDEX_TLS_CERT and INDEX_TLS_KEY swapped?)" \
            if b"PRIVATE KEY-----" in data else ""
        raise PreflightError(f"INDEX_TLS_CERT: {path} is not a PEM certificate "
                             f"(-----BEGIN CERTIFICATE-----){hint}") from None


def _read_private_key(path: str) -> object:
    data = _read(path, "INDEX_TLS_KEY")
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise PreflightError(f"INDEX_TLS_KEY: {path} is encrypted; the server needs it without "
                             f"a passphrase (openssl pkey -in {path} -out plain.key)") from None
    except (ValueError, UnsupportedAlgorithm):
        hint = " (it holds a certificate: are INDEX_TLS_CERT and INDEX_TLS_KEY swapped?)" \
            if b"CERTIFICATE-----" in data else ""
        raise PreflightError(f"INDEX_TLS_KEY: {path} is not a PEM private key{hint}") from None


def check_port_free(host: str, port: int) -> None:
    """Bind the address the server will listen on, and let go of it at once.

    SO_REUSEADDR as servers set it: a port left in TIME_WAIT by the previous run is not "in use".
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise PreflightError(f"INDEX_HOST: cannot listen on {host!r}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            if exc.errno == errno.EADDRINUSE:
                raise PreflightError(f"INDEX_PORT: {shown} is already in use by another program "
                                     f"(another index still running?); stop it or choose another "
                                     f"INDEX_PORT") from None
            if exc.errno == errno.EACCES:
                raise PreflightError(f"INDEX_PORT: not allowed to listen on {shown} (ports below "
                                     f"1024 need privileges)") from None
            if exc.errno == errno.EADDRNOTAVAIL:
                raise PreflightError(f"INDEX_HOST: {host} is not an address of this machine") from None
            raise PreflightError(f"INDEX_HOST/INDEX_PORT: cannot listen on {shown}: {exc.strerror}") from None


def check_bucket_access(client: Callable[[], Any], bucket: str, probe_key: str, location: str) -> None:
    """INDEX_LAYER_STORAGE: write, read back and delete one small object at ``probe_key``.

    ``client`` builds the S3 client (boto3 can fail already there: no region, a bad endpoint).
    """
    try:
        s3 = client()
        endpoint = str(s3.meta.endpoint_url)
    except Exception as exc:  # botocore's errors have no common base we could name
        raise PreflightError(f"INDEX_LAYER_STORAGE: cannot set up an S3 client for {location}: "
                             f"{s3_error_text(exc)}") from None
    try:
        s3.put_object(Bucket=bucket, Key=probe_key, Body=b"docker-index access check")
        s3.head_object(Bucket=bucket, Key=probe_key)
        s3.delete_object(Bucket=bucket, Key=probe_key)
    except Exception as exc:  # no credentials, refused, unreachable, no such bucket, ...
        raise PreflightError(f"INDEX_LAYER_STORAGE: {location} at {endpoint} is not usable: "
                             f"{_bucket_problem(exc, bucket)}") from None


def s3_error_text(exc: Exception) -> str:
    """An S3 client error as "Code: message" (botocore's parsed answer), else the exception."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:
        error = response["Error"]
        return f"{error.get('Code', '?')}: {error.get('Message') or ''}".strip()
    return f"{type(exc).__name__}: {exc}"


def _bucket_problem(exc: Exception, bucket: str) -> str:
    response = getattr(exc, "response", None)
    code = str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""
    name = type(exc).__name__
    if name == "NoCredentialsError":
        return "no credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile)"
    if name in ("EndpointConnectionError", "ConnectTimeoutError", "ConnectionClosedError"):
        return f"cannot connect ({exc})"
    if code == "NoSuchBucket":
        return f"the bucket {bucket!r} does not exist"
    if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403", "401"):
        return f"the credentials were refused ({code})"
    return s3_error_text(exc)
