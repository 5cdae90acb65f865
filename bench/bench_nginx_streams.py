"""
nginx streams: cost of validating the pillar, rendering, ``nginx -t`` on the candidate and
a confirmed reload, for growing numbers of streams (real nginx on loopback high ports).

    python -m bench nginx_streams
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
for _path in (REPO, os.path.join(REPO, "_utils")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import hecate_nginx_process  # noqa: E402
import hecate_nginx_render  # noqa: E402
import hecate_nginx_schema  # noqa: E402
from bench import common  # noqa: E402


def _settings(root, count, base_port):
    raw = {
        "config_file": os.path.join(root, "nginx.conf"),
        "pid_file": os.path.join(root, "nginx.pid"),
        "error_log": os.path.join(root, "error.log"),
        "access_log": None,
        "user": None,
        "worker_processes": 1,
        "service": None,
        "file_user": None,
        "file_group": None,
        "tcp_proxies": [
            {
                "name": f"s{i}",
                "listen_address": "127.0.0.1",
                "listen_port": base_port + i,
                "protocol": "udp" if i % 4 == 3 else "tcp",
                "backends": [f"127.0.0.1:{20000 + i}", f"127.0.0.1:{30000 + i}"],
            }
            for i in range(count)
        ],
    }
    return raw


def _version():
    import subprocess  # pylint: disable=import-outside-toplevel

    out = subprocess.run(["/usr/sbin/nginx", "-v"], capture_output=True, text=True, check=False)
    return out.stderr.strip().rpartition("/")[2]


def _timed(func):
    start = time.perf_counter()
    result = func()
    return result, (time.perf_counter() - start) * 1000


def main(argv):
    parser = argparse.ArgumentParser(prog="bench_nginx_streams")
    parser.add_argument("--streams", default="10,100,500", help="comma-separated stream counts")
    parser.add_argument("--smoke", action="store_true", help="5 streams")
    args = parser.parse_args(argv)
    sizes = [5] if args.smoke else [int(n) for n in args.streams.split(",") if n.strip()]
    if not os.access("/usr/sbin/nginx", os.X_OK):
        print("nginx not installed: skipped")
        return 0
    print(f"nginx {_version()} (real, loopback high ports); {common.machine()}")
    print(f"{'streams':>8} {'validate ms':>12} {'render ms':>10} {'nginx -t ms':>12} {'start ms':>9} {'reload ms':>10}")
    for count in sizes:
        root = tempfile.mkdtemp(prefix="hecate-bench-nginx-")
        try:
            raw = _settings(root, count, 62000)
            pillar = {"hecate": {"reverse_proxy": {"nginx": raw}}}
            settings, t_validate = _timed(lambda: hecate_nginx_schema.normalise(raw, pillar))
            load = hecate_nginx_process.stream_module(settings)
            text, t_render = _timed(
                lambda: hecate_nginx_render.render(settings, hecate_nginx_render.resolve_streams(settings), load)
            )
            with open(settings["config_file"], "w", encoding="utf-8") as fh:
                fh.write(text)
            _, t_check = _timed(
                lambda: hecate_nginx_process.check_config(settings["binary"], settings["config_file"], "bench")
            )
            _, t_start = _timed(lambda: hecate_nginx_process.start(settings))
            pid = hecate_nginx_process.master_pid(settings["pid_file"])
            before = hecate_nginx_process.workers(pid)

            def reload():
                hecate_nginx_process.signal_reload(settings)
                return hecate_nginx_process.confirm_reload(pid, before, settings["error_log"],
                                                   hecate_nginx_process.log_size(settings["error_log"]), 30)

            (ok, why), t_reload = _timed(reload)
            print(f"{count:>8} {t_validate:>12.1f} {t_render:>10.1f} {t_check:>12.1f} {t_start:>9.1f} "
                  f"{t_reload:>10.1f}{'' if ok else '  reload failed: ' + why}")
        finally:
            hecate_nginx_process.stop(os.path.join(root, "nginx.pid"))
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
