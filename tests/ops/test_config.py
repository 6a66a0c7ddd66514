"""Start-up validation: every bad value stops the start with one line that names the setting."""
import pytest

from index.config import ConfigError, describe, load_config


@pytest.fixture
def base_env(tmp_path):
    return {"INDEX_DATA_DIR": str(tmp_path / "data")}


@pytest.mark.parametrize("name, value, message", [
    ("INDEX_REGISTRATION", "sometimes", "INDEX_REGISTRATION: must be one of open, confirm, approval, closed"),
    ("INDEX_PORT", "http", "INDEX_PORT: must be a port number (1-65535), got 'http'"),
    ("INDEX_PORT", "70000", "INDEX_PORT: must be a port number"),
    ("INDEX_WORKERS", "0", "INDEX_WORKERS: must be a positive whole number"),
    ("INDEX_PROXY_COUNT", "-1", "INDEX_PROXY_COUNT: must not be negative"),
    ("INDEX_PROXY_COUNT", "two", "INDEX_PROXY_COUNT: must be a whole number"),
    ("INDEX_PUBLIC_HOST", "https://index.lan", "INDEX_PUBLIC_HOST: 'https://index.lan' must be a bare host[:port]"),
    ("INDEX_PUBLIC_HOST", "a.lan,b.lan", "INDEX_PUBLIC_HOST: must be one host[:port]"),
    ("INDEX_TRUSTED_HOSTS", "index.lan,http://x", "INDEX_TRUSTED_HOSTS: 'http://x' must be a bare host name"),
    ("INDEX_LOG_FORMAT", "xml", "INDEX_LOG_FORMAT: must be one of plain, json"),
    ("INDEX_SMTP_SECURITY", "tls", "INDEX_SMTP_SECURITY: must be one of starttls, ssl, none"),
    ("INDEX_SMTP_PORT", "smtp", "INDEX_SMTP_PORT: must be a port number"),
    ("INDEX_ACTIVATION_TTL", "-5", "INDEX_ACTIVATION_TTL: must be a positive whole number"),
    ("INDEX_TOKEN_TTL", "6h", "INDEX_TOKEN_TTL: must be a whole number, got '6h'"),
    ("INDEX_CREDENTIAL_CACHE_SECONDS", "off", "INDEX_CREDENTIAL_CACHE_SECONDS: must be a whole number, got 'off'"),
    ("INDEX_SMTP_USERNAME", "mailer", "INDEX_SMTP_USERNAME and INDEX_SMTP_PASSWORD must be set together"),
    ("INDEX_TLS_KEY", "/etc/hostname", "INDEX_TLS_CERT and INDEX_TLS_KEY must be set together"),
    ("INDEX_HEADER_TIMEOUT", "0", "INDEX_HEADER_TIMEOUT: must be between 1 and 60 seconds, got '0'"),
    ("INDEX_HEADER_TIMEOUT", "61", "INDEX_HEADER_TIMEOUT: must be between 1 and 60 seconds, got '61'"),
    ("INDEX_MIN_BODY_RATE", "0", "INDEX_MIN_BODY_RATE: must be a positive whole number"),
])
def test_bad_values_name_the_setting(base_env, name, value, message):
    with pytest.raises(ConfigError) as raised:
        load_config(environ={**base_env, name: value})
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


def test_unreadable_certificate_is_named(base_env, tmp_path):
    env = {**base_env, "INDEX_TLS_CERT": str(tmp_path / "missing.pem"), "INDEX_TLS_KEY": str(tmp_path / "k.pem")}
    with pytest.raises(ConfigError, match=r"^INDEX_TLS_CERT: cannot read .*missing\.pem: No such file"):
        load_config(environ=env)


@pytest.fixture(scope="module")
def two_pairs(tmp_path_factory):
    from index.ops.certs import write_self_signed
    folder = tmp_path_factory.mktemp("pairs")
    return (write_self_signed(folder / "a", ["127.0.0.1"]), write_self_signed(folder / "b", ["127.0.0.1"]))


@pytest.mark.parametrize("cert, key, message", [
    ("garbage", "garbage", r"^INDEX_TLS_CERT: \S+ is not a PEM certificate \(-----BEGIN CERTIFICATE-----\)$"),
    ("a.cert", "garbage", r"^INDEX_TLS_KEY: \S+ is not a PEM private key$"),
    ("a.key", "a.cert", r"^INDEX_TLS_CERT: \S+ is not a PEM certificate .*are INDEX_TLS_CERT and INDEX_TLS_KEY swapped\?\)$"),
    ("a.cert", "b.key", r"^INDEX_TLS_KEY: \S+b/key.pem is not the key of the certificate INDEX_TLS_CERT \S+a/cert.pem \(they do not match\)$"),
])
def test_tls_files_that_cannot_work_are_one_readable_line(base_env, tmp_path, two_pairs, cert, key, message):
    (tmp_path / "garbage").write_text("not a certificate")
    files = {"garbage": tmp_path / "garbage", "a.cert": two_pairs[0][0], "a.key": two_pairs[0][1],
             "b.key": two_pairs[1][1]}
    env = {**base_env, "INDEX_TLS_CERT": str(files[cert]), "INDEX_TLS_KEY": str(files[key])}
    with pytest.raises(ConfigError, match=message) as raised:
        load_config(environ=env)
    assert "PEM lib" not in str(raised.value) and "\n" not in str(raised.value)


def test_a_matching_pair_is_accepted(base_env, two_pairs):
    cert, key = two_pairs[0]
    assert load_config(environ={**base_env, "INDEX_TLS_CERT": str(cert), "INDEX_TLS_KEY": str(key)})["TLS_CERT"] == str(cert)


@pytest.mark.parametrize("key, accepted", [("short", False), ("x" * 31, False), ("é" * 16, True),
                                           ("x" * 32, True)])
def test_a_secret_key_needs_32_bytes(base_env, key, accepted):
    env = {**base_env, "INDEX_SECRET_KEY": key}
    if accepted:
        assert load_config(environ=env)["SECRET_KEY"] == key
    else:
        with pytest.raises(ConfigError, match=r"^INDEX_SECRET_KEY: must be at least 32 bytes, got \d+ "):
            load_config(environ=env)


def test_data_dir_that_cannot_be_created_is_named(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match=r"^INDEX_DATA_DIR: cannot create .*a-file/data: Not a directory"):
        load_config(environ={"INDEX_DATA_DIR": str(blocker / "data")})


def test_defaults_and_parsed_values(base_env):
    config = load_config(environ={**base_env, "INDEX_PORT": "8080", "INDEX_TRUSTED_HOSTS": "Index.LAN, .example.com",
                                  "INDEX_SECRET_KEY_FALLBACKS": "old1, old2", "INDEX_SMTP_HOST": "mail.lan",
                                  "INDEX_SMTP_SECURITY": "ssl"})
    assert config["PORT"] == 8080
    assert config["TRUSTED_HOSTS"] == ["index.lan", ".example.com"]
    assert config["SECRET_KEY_FALLBACKS"] == ["old1", "old2"]
    assert config["SMTP_PORT"] == 465  # follows the security mode unless set
    assert config["REGISTRATION"] == "open" and config["PROXY_COUNT"] == 0 and config["LOG_FORMAT"] == "plain"


def test_described_settings_mask_every_secret(base_env):
    config = load_config(environ={**base_env, "INDEX_SECRET_KEY": "k-secret" * 4, "INDEX_ADMIN_USERNAME": "root",
                                  "INDEX_ADMIN_PASSWORD": "a-secret", "INDEX_SECRET_KEY_FALLBACKS": "f-secret",
                                  "INDEX_SMTP_USERNAME": "mailer", "INDEX_SMTP_PASSWORD": "s-secret"})
    text = repr(describe(config))
    for secret in ("k-secret", "a-secret", "f-secret", "s-secret"):
        assert secret not in text
    assert describe(config)["SMTP_USERNAME"] == "mailer"
