#!/usr/bin/env bash
# Sets up FrameLab on this machine and runs it with the embedded defaults: SQLite, a Celery
# worker (with beat) on kombu's filesystem broker, demo data and a demo login. Ctrl-C stops all.
# The demo login (demo/demo) is a researcher; FRAMELAB_DEMO_SUPERUSER=1 makes it a superuser.
# This is a setup for one machine: see docs/security.md before others can reach it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

host=${FRAMELAB_HOST:-127.0.0.1}
port=${FRAMELAB_PORT:-8000}
var_dir=${FRAMELAB_VAR_DIR:-$PWD/var}
mkdir -p "$var_dir/log"
export PYTHONPATH="$PWD/platform:$PWD${PYTHONPATH:+:$PYTHONPATH}"
py=.venv/bin/python

$py manage.py migrate --noinput -v 0
$py manage.py collectstatic --noinput -v 0
demo_login=(--demo-user)
if [ "${FRAMELAB_DEMO_SUPERUSER:-0}" = "1" ]; then demo_login+=(--superuser); fi
$py manage.py load_demo "${demo_login[@]}"
# Queued, not run here: the worker started below computes the demo report in the background.
$py manage.py load_demo_simulation --enqueue

pids=()
cleanup() {
    trap - EXIT INT TERM
    [ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

.venv/bin/celery --app config worker --beat --loglevel INFO --queues default,models \
    --concurrency "${WORKER_CONCURRENCY:-2}" \
    --schedule "$var_dir/celery/beat-schedule" >"$var_dir/log/worker.log" 2>&1 &
pids+=($!)
.venv/bin/gunicorn --config platform/gunicorn.conf.py --bind "$host:$port" config.wsgi \
    >"$var_dir/log/web.log" 2>&1 &
pids+=($!)

for _ in $(seq 1 60); do
    if $py -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=2)" \
        "http://$host:$port/healthz" 2>/dev/null; then
        cat <<BANNER

  FrameLab is running at http://$host:$port/
  Demo login: demo / demo   (FRAMELAB_DEMO_SUPERUSER=1 makes it an admin: http://$host:$port/admin/)
  Logs: $var_dir/log/web.log, $var_dir/log/worker.log    Stop: Ctrl-C

BANNER
        wait -n "${pids[@]}"
        echo "A FrameLab process stopped; see the logs in $var_dir/log/." >&2
        exit 1
    fi
    sleep 1
done
echo "FrameLab did not answer on http://$host:$port/healthz; see $var_dir/log/web.log." >&2
exit 1
