# What the console's browser tests need: Debian's chromium, and playwright-core pinned in
# tools/console-tests (installed with `npm ci`, again only when the lock file changed). Source
# it and call `console_install`; it may run in the background while the build runs, as the
# services' installs do (scripts/test).

console_install() {
    if ! command -v chromium >/dev/null 2>&1; then
        echo "console: installing chromium from the distribution's packages"
        apt-get -o DPkg::Lock::Timeout=600 update -qq
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
            --no-install-recommends chromium >/dev/null
    fi
    if ! command -v npm >/dev/null 2>&1; then
        echo "console: installing Node.js and npm from the distribution's packages"
        apt-get -o DPkg::Lock::Timeout=600 update -qq
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq nodejs npm >/dev/null
    fi
    local dir=tools/console-tests
    if [ ! -d "$dir/node_modules/playwright-core" ] \
        || ! cmp -s "$dir/package-lock.json" "$dir/node_modules/.installed-lock.json"; then
        echo "console: npm ci (playwright-core pinned in $dir/package-lock.json)"
        npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error >/dev/null
        cp "$dir/package-lock.json" "$dir/node_modules/.installed-lock.json"
    fi
}
