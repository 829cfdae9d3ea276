"""FrameLab's Django project package; importing it makes the Celery app current."""
from .celery import app as celery_app

__all__ = ("celery_app",)
