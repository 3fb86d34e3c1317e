# The static x86_64 musl toolchain that both the test suite and the deployment package build
# with: the Rust target and the musl C compiler (rusqlite and aws-lc compile C). Source it and
# call `musl_toolchain`; it installs what is missing and exports MUSL_TARGET and the C compiler
# setting cargo's build scripts read.

MUSL_TARGET=x86_64-unknown-linux-musl

musl_toolchain() {
    if ! rustup target list --installed | grep -qx "$MUSL_TARGET"; then
        rustup target add "$MUSL_TARGET" \
            || { echo "musl: cannot install the $MUSL_TARGET Rust target" >&2; return 1; }
    fi
    if ! command -v musl-gcc >/dev/null 2>&1; then
        echo "musl: installing musl-tools from the distribution's packages"
        apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null || true
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq musl-tools >/dev/null \
            || { echo "musl: cannot install musl-tools (musl-gcc)" >&2; return 1; }
    fi
    export MUSL_TARGET
    export CC_x86_64_unknown_linux_musl=musl-gcc
}
