# Azurite's Blob service for the test suite: the npm package pinned in tools/azurite (installed
# with `npm ci` when missing), started in memory on a free loopback port and stopped afterwards.
# Source it, call `azurite_start` (exports EVENTIDE_TEST_AZURITE, a storage connection string)
# and `azurite_stop` on exit; `azurite_install` alone installs it (it may run in the background
# beforehand).

azurite_install() {
    if ! command -v npm >/dev/null 2>&1; then
        echo "azurite: installing Node.js and npm from the distribution's packages"
        apt-get -o DPkg::Lock::Timeout=600 update -qq
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq nodejs npm >/dev/null
    fi
    local dir=tools/azurite
    if [ ! -x "$dir/node_modules/.bin/azurite-blob" ] \
        || ! cmp -s "$dir/package-lock.json" "$dir/node_modules/.installed-lock.json"; then
        echo "azurite: npm ci (version pinned in $dir/package-lock.json)"
        npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error >/dev/null
        cp "$dir/package-lock.json" "$dir/node_modules/.installed-lock.json"
    fi
}

azurite_start() {
    azurite_install
    local dir=tools/azurite
    AZURITE_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    # Started directly (not through npx) so $! is Azurite's own process.
    "$dir/node_modules/.bin/azurite-blob" --silent --skipApiVersionCheck --disableTelemetry \
        --inMemoryPersistence --blobHost 127.0.0.1 --blobPort "$AZURITE_PORT" >/dev/null 2>&1 &
    AZURITE_PID=$!
    local waited=0
    until (exec 3<>"/dev/tcp/127.0.0.1/$AZURITE_PORT") 2>/dev/null; do
        if ! kill -0 "$AZURITE_PID" 2>/dev/null || [ "$waited" -ge 300 ]; then
            echo "azurite: did not start listening on 127.0.0.1:$AZURITE_PORT" >&2
            return 1
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    # Azurite's documented development account; its key is public, not a secret.
    local key="Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
    export EVENTIDE_TEST_AZURITE="DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=$key;BlobEndpoint=http://127.0.0.1:$AZURITE_PORT/devstoreaccount1;"
    echo "azurite: blob service on 127.0.0.1:$AZURITE_PORT (pid $AZURITE_PID)"
}

azurite_stop() {
    if [ -n "${AZURITE_PID:-}" ] && kill -0 "$AZURITE_PID" 2>/dev/null; then
        kill "$AZURITE_PID"
        wait "$AZURITE_PID" 2>/dev/null || true
        echo "azurite: stopped"
    fi
}
