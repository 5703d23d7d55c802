"""What the bench reads from /proc: CPU time and RSS of a proxy, and the machine.

A proxy is measured as the set of processes in its session (every process the bench
starts gets a session of its own), so nginx's master + worker and nghttpx's processes
are all counted, and nothing else is.
"""
from __future__ import annotations

import os
import platform
import subprocess

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    # fields after "(comm)": index 0 is field 3 (state) of proc(5)
    return data[data.rindex(")") + 2:].split()


def session_pids(sid: int) -> list[int]:
    """Every live process whose session id is `sid` (the leader's pid)."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if int(_stat_fields(int(name))[3]) == sid:
                pids.append(int(name))
        except (OSError, IndexError, ValueError):
            pass
    return pids


def cpu_seconds(sid: int) -> float:
    """user+sys CPU seconds of the live processes of session `sid`."""
    total = 0
    for pid in session_pids(sid):
        try:
            f = _stat_fields(pid)
            total += int(f[11]) + int(f[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total / CLK_TCK


def cpu_seconds_sched(sid: int) -> float:
    """On-CPU time of the live threads of session `sid` from the scheduler's own
    accounting (se.sum_exec_runtime in /proc/PID/task/TID/sched, nanosecond-precise).
    /proc/PID/stat's utime+stime are sampled at each timer tick (this kernel has
    CONFIG_TICK_CPU_ACCOUNTING, HZ=250): exact enough for a busy process, but a proxy
    at 1 000 requests/s runs ~4 % of the time and tick sampling then misses ±10 %."""
    total = 0.0
    for pid in session_pids(sid):
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/sched") as f:
                    for line in f:
                        if line.startswith("se.sum_exec_runtime"):
                            total += float(line.split(":")[1]) / 1000   # ms -> s
                            break
            except (OSError, ValueError):
                pass
    return total


def rss_kb(sid: int) -> int:
    """Sum of VmRSS over the live processes of session `sid` (shared pages of a
    master and its worker count twice: an upper bound for multi-process proxies)."""
    total = 0
    for pid in session_pids(sid):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


def cpu_totals() -> dict:
    """Seconds of CPU time of the whole machine so far, from /proc/stat."""
    with open("/proc/stat") as f:
        vals = [int(v) / CLK_TCK for v in f.readline().split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = vals
    # without IRQ time accounting (this kernel) a process's stime includes the interrupts
    # that hit it, so "busy" includes irq and softirq to be comparable with process times
    return {"busy": user + nice + system + irq + softirq, "steal": steal, "all": sum(vals)}


def machine() -> dict:
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_gib = 0.0
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem_gib = int(line.split()[1]) / 1024 / 1024
                    break
    except OSError:
        pass
    try:
        distro = subprocess.run(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"],
                                capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        distro = "unknown"
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": platform.release(),
            "memory_gib": round(mem_gib, 1), "os": distro}


def upstream_connections(sid: int, ports: set[int]) -> int:
    """How many established TCP connections the processes of session `sid` hold to
    HOST:port for a port in `ports` (IPv4; matched through the sockets' inodes, so a
    connection another proxy holds to the same backend is not counted)."""
    inodes = set()
    for pid in session_pids(sid):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    count = 0
    try:
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                cols = line.split()
                # cols: sl local_address rem_address st ... inode (index 9); 01 = ESTABLISHED
                if cols[3] == "01" and int(cols[2].split(":")[1], 16) in ports and cols[9] in inodes:
                    count += 1
    except OSError:
        pass
    return count
