"""A self-signed certificate for a test rig or a LAN: ``python -m index cert`` / ``make cert``."""
from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path
from typing import Sequence

import click
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_HOSTS = ("localhost", "127.0.0.1")


def _alt_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def make_self_signed(hosts: Sequence[str], days: int = 825) -> tuple[bytes, bytes]:
    """PEM certificate and PEM private key (P-256) valid for ``hosts`` (names or IP addresses).

    The certificate is its own CA (``CA:TRUE``), so a client can trust it directly as ``ca.crt``.
    """
    if not hosts:
        raise ValueError("at least one host is needed")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0]),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "docker-index self-signed")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([_alt_name(host) for host in hosts]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, content_commitment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


def write_self_signed(folder: Path, hosts: Sequence[str], days: int = 825) -> tuple[Path, Path]:
    """Write ``cert.pem`` and ``key.pem`` (mode 0600) into ``folder``."""
    cert_pem, key_pem = make_self_signed(hosts, days)
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key_pem)
    os.chmod(key_path, 0o600)
    cert_path.write_bytes(cert_pem)
    return cert_path, key_path


@click.command("cert")
@click.option("--host", "hosts", multiple=True,
              help="A name or IP address the certificate is for (repeatable). "
                   f"Default: {', '.join(DEFAULT_HOSTS)}.")
@click.option("--out", "folder", default="certs", show_default=True, type=click.Path(file_okay=False),
              help="Folder for cert.pem and key.pem.")
@click.option("--days", default=825, show_default=True, type=click.IntRange(1, 3650),
              help="How long the certificate is valid.")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535),
              help="The port the index will serve on (for the printed instructions).")
def cert_command(hosts: tuple[str, ...], folder: str, days: int, port: int) -> None:
    """Make a self-signed TLS certificate and print how to serve it and make docker trust it."""
    chosen = list(hosts) or list(DEFAULT_HOSTS)
    cert_path, key_path = write_self_signed(Path(folder), chosen, days)
    cert_path, key_path = cert_path.resolve(), key_path.resolve()
    first = chosen[0]
    click.echo(f"wrote {cert_path} and {key_path} (for {', '.join(chosen)}, valid {days} days)\n")
    click.echo("Serve HTTPS with it:")
    click.echo(f"  INDEX_TLS_CERT={cert_path} INDEX_TLS_KEY={key_path} make run HOST=0.0.0.0 PORT={port}\n")
    click.echo("Make a docker client trust it (on every machine that pushes or pulls):")
    click.echo(f"  sudo mkdir -p /etc/docker/certs.d/{first}:{port}")
    click.echo(f"  sudo cp {cert_path} /etc/docker/certs.d/{first}:{port}/ca.crt")
    click.echo("  (older docker daemons only read the system store: copy it to")
    click.echo("   /usr/local/share/ca-certificates/docker-index.crt, run update-ca-certificates")
    click.echo("   and restart the docker daemon)\n")
    click.echo("Check it from a shell:")
    click.echo(f"  curl --cacert {cert_path} https://{first}:{port}/v1/_ping")
