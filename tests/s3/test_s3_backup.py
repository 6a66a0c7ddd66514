"""``backup`` says what it covers: with layers in S3 the archive holds the metadata only."""
from __future__ import annotations

import json
import tarfile

from index import create_app
from index.ops.backup import MANIFEST


def manifest(path) -> dict:
    with tarfile.open(path) as archive:
        return json.loads(archive.extractfile(MANIFEST).read())


def test_backup_with_layers_in_s3_says_it_holds_the_metadata_only(s3_bucket, settings, tmp_path):
    app = create_app({**settings, "LAYER_STORAGE": f"s3://{s3_bucket}/index", "S3_PATH_STYLE": "true"})
    dest = tmp_path / "backup.tar.gz"
    with app.app_context():
        result = app.test_cli_runner().invoke(args=["backup", str(dest)])
    assert result.exit_code == 0, result.output
    assert f"the layers are in s3://{s3_bucket}/index/; back that bucket up too" in result.output
    assert manifest(dest)["layers"] == f"s3://{s3_bucket}/index/"


def test_backup_with_layers_in_the_data_dir_holds_them(settings, tmp_path):
    app = create_app(settings)
    dest = tmp_path / "backup.tar.gz"
    with app.app_context():
        result = app.test_cli_runner().invoke(args=["backup", str(dest)])
    assert result.exit_code == 0, result.output
    assert "metadata only" not in result.output
    assert manifest(dest)["layers"] == "in this archive"
