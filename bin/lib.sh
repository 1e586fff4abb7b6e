# Shared by bin/demo and bin/test: the virtualenv and the services, set up idempotently.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    say "need root for: $*"; return 1
  fi
}

apt_install() {
  say "installing $* with apt"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# ensure_venv [EXTRAS]: .venv with the project (and EXTRAS, e.g. "dev") installed.
# Reinstalls only when pyproject.toml changed since the last install.
ensure_venv() {
  local extras="${1:-}" python="${PYTHON:-}"
  if [ -z "$python" ]; then
    python="$(command -v python3.11 || command -v python3)"
  fi
  if [ ! -x "$PY" ]; then
    say "creating .venv with $python"
    "$python" -m venv "$VENV" 2>/dev/null || { apt_install python3-venv && "$python" -m venv "$VENV"; }
  fi
  local stamp="$VENV/.installed${extras:+-$extras}"
  local want
  want="$(sha256sum "$ROOT/pyproject.toml" | cut -c1-16)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "installing Python packages into .venv"
    "$PY" -m pip install -q --disable-pip-version-check --upgrade pip
    # The CPU build of torch lies on disk on our machines; installed first, it satisfies
    # pyproject's range, so pip never fetches a multi-GB CUDA build.
    "$PY" -m pip install -q --disable-pip-version-check "torch==2.13.0"
    "$PY" -m pip install -q --disable-pip-version-check -e "$ROOT${extras:+[$extras]}"
    echo "$want" >"$stamp"
  fi
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for_port() {
  local port="$1" name="$2"
  for _ in $(seq 1 60); do port_open "$port" && return 0; sleep 0.5; done
  say "$name did not start on 127.0.0.1:$port"; return 1
}

# PostgreSQL on 127.0.0.1:5432 with user postgres / password postgres (trust works too).
ensure_postgres() {
  port_open 5432 && return 0
  local fresh=""
  if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    apt_install postgresql
    fresh=1
  fi
  say "starting PostgreSQL"
  local version
  version="$(ls /etc/postgresql | sort -V | tail -n 1)"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start \
    || as_root service postgresql start
  wait_for_port 5432 PostgreSQL
  if [ -n "$fresh" ]; then  # a fresh cluster asks for passwords over TCP: give the test one
    as_root su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD 'postgres'\""
  fi
}

# Redis on 127.0.0.1:6379, keeping nothing on disk.
ensure_redis() {
  port_open 6379 && return 0
  command -v redis-server >/dev/null || apt_install redis-server
  say "starting Redis"
  as_root mkdir -p /var/lib/redis /var/log/redis
  as_root redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" \
    --appendonly no --dir /var/lib/redis --logfile /var/log/redis/shepherd.log
  wait_for_port 6379 Redis
}

# Debian's Chromium, for the browser tests (Playwright drives it by executable_path).
ensure_chromium() {
  command -v chromium >/dev/null || apt_install chromium
}
