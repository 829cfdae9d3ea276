"""gunicorn settings for the web process (run from the repository root, as the Procfile does).

The listen address and the number of workers come from the environment.
"""
import os

_platform_dir = os.path.dirname(os.path.abspath(__file__))
pythonpath = f"{_platform_dir},{os.path.dirname(_platform_dir)}"
bind = os.environ.get(
    "GUNICORN_BIND",
    f"{os.environ.get('FRAMELAB_HOST', '127.0.0.1')}:{os.environ.get('FRAMELAB_PORT', '8000')}",
)
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
accesslog = "-"
