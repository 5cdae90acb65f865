"""Helpers the benchmarks share: process memory from /proc, the machine line."""

import os


def memory(pid):
    """``{"VmRSS": MB, "VmHWM": MB}`` of a process (empty when /proc is unavailable)."""
    out = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(value.split()[0]) / 1024
    except OSError:
        pass
    return out


def reset_peak(pid):
    """Reset a process's VmHWM to its current RSS (Linux >= 4.0); False if not allowed."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def machine():
    """``2 cores, load average 1.2 0.9 0.8``: the figures depend on both."""
    try:
        load = " ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        load = "?"
    return f"{os.cpu_count()} cores, load average {load}"
