"""`python -m registry.fakes --port 8900`: the fake providers in the foreground."""

import argparse

from registry.fakes.server import FakeProviderServer, base_urls


def main() -> None:
    parser = argparse.ArgumentParser(description="Fake LLM providers on 127.0.0.1 (never a real host).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--chunk-delay", type=float, default=0.02, help="seconds between stream chunks")
    parser.add_argument("--demo", action="store_true", help="change listings and health over time (make run)")
    args = parser.parse_args()
    server = FakeProviderServer(args.host, args.port, chunk_delay=args.chunk_delay)
    for kind, url in base_urls(server.url).items():
        print(f"{kind:18} {url}")
    server.serve_forever(demo=args.demo)


if __name__ == "__main__":
    main()
