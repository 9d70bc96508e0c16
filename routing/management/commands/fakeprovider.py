"""`manage.py fakeprovider --port 8900`: the fake providers (demo mode, benchmarks, manual tests)."""

from django.core.management.base import BaseCommand

from registry.fakes.server import KEY, FakeProviderServer, base_urls


class Command(BaseCommand):
    help = "Serve every provider's API (fake, local) on 127.0.0.1 for demos and tests."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8900)
        parser.add_argument("--chunk-delay", type=float, default=0.02, help="seconds between stream chunks")
        parser.add_argument("--demo", action="store_true", help="change listings and health over time (make run)")

    def handle(self, *args, host, port, chunk_delay, demo, **options):
        server = FakeProviderServer(host, port, chunk_delay=chunk_delay)
        self.stdout.write(f"Fake providers on {server.url} (key: {KEY!r}); base URLs:")
        for kind, url in base_urls(server.url).items():
            self.stdout.write(f"  {kind:18} {url}")
        server.serve_forever(demo=demo)
