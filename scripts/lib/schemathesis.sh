# schemathesis, pinned, in a virtualenv under target/ (sourced by scripts/test and
# scripts/check-api). `schemathesis_install` is quick when the pinned version is there already.
SCHEMATHESIS_VERSION=4.32.5
SCHEMATHESIS_VENV=${SCHEMATHESIS_VENV:-$PWD/target/schemathesis}

schemathesis_install() {
    if "$SCHEMATHESIS_VENV/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
        return
    fi
    python3 -m venv "$SCHEMATHESIS_VENV" || {
        apt-get install -y python3-venv >/dev/null && python3 -m venv "$SCHEMATHESIS_VENV"
    }
    "$SCHEMATHESIS_VENV/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION"
}
