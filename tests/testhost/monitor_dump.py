# Prints what QEMU's monitor says about a test host's CPUs (run.sh, when a test host times out):
# `info cpus` and every CPU's registers, so a hang leaves its evidence in the failure log.
# usage: monitor_dump.py MONITOR_SOCKET
import socket
import sys
import time

s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.settimeout(2)


def cmd(c):
    s.sendall((c + "\n").encode())
    time.sleep(1)
    out = b""
    try:
        while True:
            d = s.recv(1 << 16)
            if not d:
                break
            out += d
    except socket.timeout:
        pass
    return out.decode(errors="replace")


cmd("")
for c in ("info cpus", "info registers -a"):
    print(cmd(c))
