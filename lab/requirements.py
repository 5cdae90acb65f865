"""
Print the requirements declared in setup.cfg (install_requires + the named extras), one
per line, so the Makefile installs dependencies from the single place they are declared
without installing hecate itself into the test venv (tests load the repo's modules).

    python lab/requirements.py tests > requirements.txt
"""

import configparser
import os
import sys

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def requirements(extras):
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(HERE, "setup.cfg"))
    lines = cfg.get("options", "install_requires").splitlines()
    for extra in extras:
        lines += cfg.get("options.extras_require", extra).splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def main(argv):
    if sys.version_info < (3, 10):  # noqa: UP036  (runs under the system Python, before the venv)
        sys.exit(f"hecate needs Python 3.10+ (this is {sys.version.split()[0]})")
    print("\n".join(requirements(argv)))


if __name__ == "__main__":
    main(sys.argv[1:])
