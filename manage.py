#!/usr/bin/env python
"""Django's command-line entry point; puts platform/ on the path so `config` imports."""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def main() -> None:
    # platform/ is a directory on the path, never a package: a package named `platform`
    # would shadow the standard library module that uuid, Django and Celery import.
    sys.path.insert(0, str(ROOT / "platform"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
