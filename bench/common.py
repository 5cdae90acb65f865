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


def _proc_stats():
    """``{pid: (ppid, cpu seconds of it and of its reaped children)}`` from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                text = fh.read()
        except OSError:
            continue
        # the command name (field 2) may hold spaces and parentheses: split after its last ")"
        fields = text[text.rindex(")") + 2:].split()
        ppid = int(fields[1])
        utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
        out[int(entry)] = (ppid, (utime + stime + cutime + cstime) / tick)
    return out


def _tree(pids, stats):
    """The processes ``pids`` (those alive in ``stats``) and all their descendants."""
    children = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    todo, seen = [p for p in pids if p in stats], set()
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo.extend(children.get(pid, ()))
    return seen


def tree_cpu(pids):
    """
    CPU seconds (user + system) used so far by the processes ``pids``, all their descendants
    and the children those reaped: the whole of a daemon such as a salt-minion with the job
    processes it forks. 0.0 without /proc. On a shared machine this holds better than wall
    time: it does not grow when other work takes the processors.
    """
    try:
        stats = _proc_stats()
    except OSError:
        return 0.0
    return sum(stats[pid][1] for pid in _tree(pids, stats))


def tree_memory(pids):
    """
    ``{"rss": MB, "peak": MB, "processes": n}`` of the processes ``pids`` and all their
    descendants now: the sum of their resident sets and the largest high-water mark (VmHWM)
    of any one of them. Zeros without /proc.
    """
    try:
        stats = _proc_stats()
    except OSError:
        return {"rss": 0.0, "peak": 0.0, "processes": 0}
    seen = _tree(pids, stats)
    figures = [memory(pid) for pid in seen]
    return {"rss": sum(f.get("VmRSS", 0) for f in figures),
            "peak": max((f.get("VmHWM", 0) for f in figures), default=0.0), "processes": len(seen)}
