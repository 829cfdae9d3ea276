"""The platform's own system checks (Django's check framework), registered by core/apps.py."""
