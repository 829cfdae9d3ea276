"""Processes load only what their work uses.

Every web worker imports the URL configuration, and so does every management command
(Django's system checks read it). Neither may pull in the model libraries: model work runs in
Celery tasks on the `models` queue and in the commands that train or score, which import
them when they run. The statistics, plotting and Arrow libraries load with the pages and
jobs that use them, not with the URL configuration.
"""
import json
import subprocess
import sys
from pathlib import Path

from django.urls import get_resolver
from django.utils.module_loading import import_string

ROOT = Path(__file__).resolve().parents[1]
MODEL_LIBRARIES = ("torch", "transformers", "peft", "sentence_transformers", "gguf", "jax", "numpyro")
ANALYSIS_LIBRARIES = ("scipy", "matplotlib", "pyarrow", "pandas")
URL_CONF_MAX_MB = 200
COMMAND_MODULES = sorted(
    ".".join(path.relative_to(ROOT).with_suffix("").parts)
    for path in ROOT.glob("*/management/commands/[a-z]*.py")
)


def loaded_after_import(*modules: str) -> dict:
    """In a fresh interpreter with Django set up, import `modules` in order; for each, the
    heavy libraries loaded so far, and the process's peak resident memory in MB at the end."""
    code = f"""
import json, os, sys
sys.path[:0] = ["platform", "."]
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
import django
django.setup()
import importlib
heavy = {list(MODEL_LIBRARIES + ANALYSIS_LIBRARIES)!r}
loaded = {{}}
for name in {list(modules)!r}:
    importlib.import_module(name)
    if name == "config.urls":
        from django.urls import get_resolver
        get_resolver().url_patterns
    loaded[name] = [m for m in heavy if m in sys.modules]
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec, from the forked test process.
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(json.dumps({{"loaded": loaded, "peak_mb": int(status["VmHWM"].split()[0]) / 1024}}))
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            timeout=180)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_url_configuration_loads_no_model_or_analysis_library_and_stays_small():
    measured = loaded_after_import("config.urls")
    assert measured["loaded"] == {"config.urls": []}
    assert measured["peak_mb"] < URL_CONF_MAX_MB, measured


def test_importing_the_management_commands_loads_no_model_library():
    """One interpreter imports every command in turn: the first that loads a model library
    is the one named in the failure."""
    loaded = loaded_after_import(*COMMAND_MODULES)["loaded"]
    assert len(loaded) == len(COMMAND_MODULES) > 15
    assert {module: [name for name in names if name in MODEL_LIBRARIES]
            for module, names in loaded.items()} == {module: [] for module in COMMAND_MODULES}


def test_the_guard_sees_a_model_library_when_one_is_imported():
    assert "torch" in loaded_after_import("modeling.training")["loaded"]["modeling.training"]


def test_every_lazily_bound_view_exists():
    def patterns(resolver):
        for pattern in resolver.url_patterns:
            yield from patterns(pattern) if hasattr(pattern, "url_patterns") else [pattern]

    targets = [getattr(p.callback, "lazy_target", None) for p in patterns(get_resolver())]
    targets = [target for target in targets if target]
    assert len(targets) >= 15  # the report and the persona score pages
    for target in targets:
        assert callable(import_string(target)), target
