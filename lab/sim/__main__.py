"""Run one simulator: ``python -m lab.sim <name> --port N [--config f] [--tls-cert c --tls-key k]``."""

import argparse
import json

from lab.sim import SIMULATORS, load
from lab.sim.base import serve


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m lab.sim")
    parser.add_argument("name", choices=sorted(SIMULATORS))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--config", help="JSON options for the simulator")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    args = parser.parse_args(argv)
    options = {}
    if args.config:
        with open(args.config, encoding="utf-8") as fh:
            options = json.load(fh)
    app = load(args.name)(options)
    serve(app, args.host, args.port, args.tls_cert, args.tls_key)


if __name__ == "__main__":
    main()
