"""The S3 settings as they reach the store, without a server (presigned URLs are computed locally)."""
from __future__ import annotations

import pytest

from index.config import ConfigError, load_config, parse_location
from index.registry.s3blobs import S3Blobs, make_client

DIGEST = "sha256:" + "ab" * 32


def blobs(path_style: bool) -> S3Blobs:
    def client(style: bool):
        return make_client(style, endpoint_url="http://objects.example:9000", region_name="us-east-1",
                           aws_access_key_id="key", aws_secret_access_key="secret")
    return S3Blobs(parse_location("s3://layers/index"), path_style=path_style, redirect_seconds=90,
                   client_factory=client)


def test_path_style_puts_the_bucket_in_the_path_otherwise_in_the_host_name():
    path = blobs(path_style=True).presigned_url(DIGEST)
    assert path.startswith("http://objects.example:9000/layers/index/blobs/sha256/ab/")
    virtual = blobs(path_style=False).presigned_url(DIGEST)
    assert virtual.startswith("http://layers.objects.example:9000/index/blobs/sha256/ab/")
    for url in (path, virtual):
        assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url and "X-Amz-Expires=90" in url


def test_settings_from_the_environment():
    config = load_config(environ={"INDEX_LAYER_STORAGE": "s3://layers/some/prefix/", "INDEX_S3_PATH_STYLE": "true",
                                  "INDEX_S3_REDIRECT": "yes", "INDEX_S3_REDIRECT_SECONDS": "60"},
                         overrides={"DATA_DIR": "/tmp/s3-settings-test"})
    assert str(config["LAYER_STORAGE"]) == "s3://layers/some/prefix/"
    assert (config["S3_PATH_STYLE"], config["S3_REDIRECT"], config["S3_REDIRECT_SECONDS"]) == (True, True, 60)
    assert load_config(environ={}, overrides={"DATA_DIR": "/tmp/s3-settings-test"})["LAYER_STORAGE"] is None


@pytest.mark.parametrize("name,value,message", [
    ("INDEX_LAYER_STORAGE", "/srv/layers", "INDEX_LAYER_STORAGE: must be s3://bucket[/prefix]"),
    ("INDEX_LAYER_STORAGE", "s3://layers/a/../b", "INDEX_LAYER_STORAGE: the prefix 'a/../b'"),
    ("INDEX_S3_REDIRECT_SECONDS", "0", "INDEX_S3_REDIRECT_SECONDS: must be a positive whole number"),
    ("INDEX_S3_PATH_STYLE", "maybe", "INDEX_S3_PATH_STYLE: expected true or false"),
])
def test_bad_settings_name_themselves(name, value, message):
    with pytest.raises(ConfigError) as refused:
        load_config(environ={name: value}, overrides={"DATA_DIR": "/tmp/s3-settings-test"})
    assert str(refused.value).startswith(message), str(refused.value)
