"""The README's first command, end to end: scripts/run.sh sets up, loads the demo, serves the
platform with a worker, and a person can log in and see the demo dataset."""
import http.cookiejar
import os
import re
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_run_script_serves_the_demo_with_a_worker(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "MEDIA_ROOT",
                        "DJANGO_SETTINGS_MODULE"}}
    env.update(FRAMELAB_PORT=str(port), FRAMELAB_VAR_DIR=str(tmp_path / "var"))
    process = subprocess.Popen(["scripts/run.sh"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    output = []
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line and process.poll() is not None:
                break
            output.append(line)
            if "Demo login: demo / demo" in line:
                break
        text = "".join(output)
        assert f"FrameLab is running at http://127.0.0.1:{port}/" in text, text

        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        base = f"http://127.0.0.1:{port}"
        login_page = opener.open(f"{base}/accounts/login/").read().decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page).group(1)
        data = urllib.parse.urlencode({"username": "demo", "password": "demo",
                                       "csrfmiddlewaretoken": token}).encode()
        request = urllib.request.Request(f"{base}/accounts/login/", data=data,
                                         headers={"Referer": f"{base}/accounts/login/"})
        page = opener.open(request).read().decode()
        assert "FrameLab demo" in page
        css = opener.open(f"{base}/static/framelab.css")
        assert css.status == 200

        worker_log = (tmp_path / "var" / "log" / "worker.log")
        for _ in range(60):
            if "ready." in worker_log.read_text():
                break
            time.sleep(1)
        assert "ready." in worker_log.read_text()
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
