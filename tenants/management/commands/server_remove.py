from django.core.management.base import BaseCommand, CommandError

from ...services.servers import ServerError, server_remove


class Command(BaseCommand):
    help = "Unregister a server that holds no tenant (its database is left for you to drop)."

    def add_arguments(self, parser):
        parser.add_argument("name")

    def handle(self, *args, name, **options):
        try:
            server_remove(name=name)
        except ServerError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"Removed server {name}."))
