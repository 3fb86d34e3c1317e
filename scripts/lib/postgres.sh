# PostgreSQL for the test suite: installed from Debian's packages when missing, started, given a
# fresh test role and database, and stopped again afterwards if this script started it.
# Source it, call `postgres_start` (exports EVENTIDE_TEST_POSTGRES) and `postgres_stop` on exit;
# `postgres_install` alone installs the server (it may run in the background beforehand).

postgres_install() {
    if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
        echo "postgres: installing from the distribution's packages"
        # Another apt run may hold the dpkg lock for a while; wait for it rather than fail.
        apt-get -o DPkg::Lock::Timeout=600 update -qq
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq postgresql >/dev/null
    fi
}

postgres_start() {
    postgres_install
    local cluster
    cluster=$(pg_lsclusters -h | head -n 1)
    if [ -z "$cluster" ]; then
        local version
        version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
        pg_createcluster "$version" main >/dev/null
        cluster=$(pg_lsclusters -h | head -n 1)
    fi
    read -r PG_VERSION PG_CLUSTER PG_PORT PG_STATUS _ <<<"$cluster"
    if [ "$PG_STATUS" = online ]; then
        PG_STARTED_HERE=0
    else
        pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" start
        PG_STARTED_HERE=1
    fi
    local password
    password=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
    PGOPTIONS="-c client_min_messages=warning" runuser -u postgres -- psql -q -p "$PG_PORT" -v ON_ERROR_STOP=1 >/dev/null <<SQL
DROP DATABASE IF EXISTS eventide_test WITH (FORCE);
DROP ROLE IF EXISTS eventide_test;
CREATE ROLE eventide_test LOGIN PASSWORD '$password';
CREATE DATABASE eventide_test OWNER eventide_test;
SQL
    export EVENTIDE_TEST_POSTGRES="postgres://eventide_test:$password@127.0.0.1:$PG_PORT/eventide_test"
    echo "postgres: $PG_VERSION/$PG_CLUSTER on 127.0.0.1:$PG_PORT, test database eventide_test"
}

postgres_stop() {
    if [ -n "${PG_VERSION:-}" ]; then
        runuser -u postgres -- psql -q -p "$PG_PORT" -c "DROP DATABASE IF EXISTS eventide_test WITH (FORCE)" >/dev/null 2>&1 || true
        if [ "${PG_STARTED_HERE:-0}" = 1 ]; then
            pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" stop || true
            echo "postgres: stopped"
        fi
    fi
}
