"""`manage.py login_unlock [USERNAME] [--address IP]`: lift a login lockout (core/login_limits.py)."""
from django.core.management.base import BaseCommand, CommandError

from core.login_limits import unlock


class Command(BaseCommand):
    help = "Forget the failed sign-in attempts of an account and/or a client address."

    def add_arguments(self, parser):
        parser.add_argument("username", nargs="?", help="the account's username")
        parser.add_argument("--address", help="a client address (an IPv6 address frees its /64)")

    def handle(self, *args, username=None, address=None, **options):
        if not username and not address:
            raise CommandError("Name a username, an --address, or both.")
        unlock(username=username, address=address)
        done = " and ".join(part for part in (username and f"account {username!r}",
                                              address and f"address {address}") if part)
        self.stdout.write(f"Failed sign-in attempts forgotten for {done}.")
