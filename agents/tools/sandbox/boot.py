"""Runs first inside the sandbox: set the resource limits, drop root, then exec the real command.

This file is bind-mounted into the sandbox and run with `python -I -S`, so it uses the standard
library only. Limits are set here, inside the new namespaces, rather than before bwrap starts, so
that the process limit counts this sandbox's processes only.

    python -I -S boot.py CPU_S MEMORY_BYTES DISK_BYTES PROCESSES UID -- COMMAND...

UID is -1 to keep the current user; otherwise (Fawn running as root) the code runs as that
unprivileged uid, because the kernel exempts root from the process limit. If anything here fails
the code is not run: exit code FAILED_EXIT with FAILED_MARKER on stderr.
"""

from __future__ import annotations

import os
import resource
import sys

OPEN_FILES = 256
FAILED_EXIT = 125
FAILED_MARKER = "fawn-sandbox-boot-failed:"


def main(argv: list[str]) -> None:
    """Apply the limits in argv, drop privileges if asked, and exec the command after `--`."""
    cpu_s, memory, disk, processes, uid = (int(value) for value in argv[1:6])
    command = argv[argv.index("--") + 1 :]
    # The code gets stdin, stdout and stderr only, never a descriptor bwrap or Fawn left open.
    os.closerange(3, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    # The hard CPU limit is one second above the soft one: SIGXCPU first, SIGKILL if ignored.
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_FSIZE, (disk, disk))
    resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))
    resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES, OPEN_FILES))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if uid >= 0:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    os.execv(command[0], command)


if __name__ == "__main__":
    try:
        main(sys.argv)
    except (OSError, ValueError) as exc:
        # Fawn reads this as "the sandbox could not be set up", never as the code's failure.
        sys.stderr.write(f"{FAILED_MARKER} {exc!r}\n")
        sys.exit(FAILED_EXIT)
