#!/usr/bin/env bash
# Install docker-registry 0.9.1 (Python 2.7 only) into a folder for tests/access/test_docker_registry_09.py:
#   tests/access/docker_registry_09.sh /opt/docker-registry-0.9 [python2.7]
#   DOCKER_REGISTRY_09=/opt/docker-registry-0.9 make test
# Its pinned M2Crypto 0.22.3 does not build against OpenSSL 3. docker-registry imports it only to
# verify `privileged_key` signatures, which the test does not configure: an import-only stand-in
# that raises on any use takes its place.
set -euo pipefail
target=${1:?usage: $0 TARGET_DIR [PYTHON2]}
python2=${2:-python2.7}
"$python2" -m pip install --target "$target" --no-deps \
    docker-registry==0.9.1 docker-registry-core==2.0.3 backports.lzma==0.0.3 blinker==1.3 \
    Flask==0.10.1 gevent==1.0.1 gunicorn==19.1.1 PyYAML==3.11 requests==2.3.0 sqlalchemy==0.9.4 \
    boto==2.34.0 redis==2.10.3 simplejson==3.6.2 "Werkzeug<1" "Jinja2<3" "itsdangerous<1" \
    "MarkupSafe<2" "greenlet<0.5"
mkdir -p "$target/M2Crypto"
cat > "$target/M2Crypto/__init__.py" <<'PY'
"""Import-only stand-in for M2Crypto (docker-registry 0.9.1 uses it for privileged_key only)."""


class _Unavailable(object):
    def __getattr__(self, name):
        raise RuntimeError("M2Crypto is not installed; privileged_key is not supported here")


RSA = _Unavailable()
BIO = _Unavailable()
PY
echo "installed into $target: DOCKER_REGISTRY_09=$target"
