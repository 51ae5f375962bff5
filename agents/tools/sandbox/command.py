"""The bubblewrap command line: what sandboxed code can see, and nothing more.

Inside the sandbox there is the system (`/usr` and the `/lib*`, `/bin` links, a few files from
`/etc`), this Python's install prefix and its packages (as a venv at /sandbox/venv), the code at
/sandbox/main.py and its work dir /sandbox/work, which is also its HOME, TMPDIR and /tmp. Nothing
else from the host: not the Fawn checkout, not the data dir, not /root or /home. Everything but
the work dir is read-only (/dev too, so no shared memory); there is no network, the environment is
rebuilt from scratch, and the code runs in new mount/PID/IPC/UTS/network namespaces that die with
Fawn, as an unprivileged user: the current one in a user namespace that may not nest further, or,
when Fawn runs as root, a random uid of its own with no capabilities.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import sysconfig
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from agents.errors import SandboxError
from agents.tools.sandbox.boot import FAILED_EXIT, FAILED_MARKER
from agents.tools.sandbox.models import SandboxLimits
from agents.tools.sandbox.workspace import Workspace

DEFAULT_BWRAP = "bwrap"
INSTALL_HINT = (
    "Install bubblewrap (Debian/Ubuntu: `apt-get install bubblewrap`, Fedora: "
    "`dnf install bubblewrap`)"
)
SANDBOX_DIR = "/sandbox"
WORK_DIR = f"{SANDBOX_DIR}/work"
SCRIPT = f"{SANDBOX_DIR}/main.py"
BOOT = f"{SANDBOX_DIR}/boot.py"
VENV = f"{SANDBOX_DIR}/venv"
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Only what programs need to start and draw: the loader cache, fonts, the time zone.
ETC_ENTRIES = ("/etc/ld.so.cache", "/etc/fonts", "/etc/localtime", "/etc/alternatives")
# When Fawn runs as root, the code runs as a random uid from this range: root is exempt from the
# process limit, and a uid of its own keeps each run's processes apart.
SANDBOX_UIDS = range(200_000_000, 300_000_000)
SANDBOX_ENV = {
    "PATH": f"{VENV}/bin:/usr/local/bin:/usr/bin:/bin",
    "HOME": WORK_DIR,
    "TMPDIR": WORK_DIR,
    "USER": "sandbox",
    "LOGNAME": "sandbox",
    "LANG": "C.UTF-8",
    "MPLBACKEND": "Agg",
    "PYTHONDONTWRITEBYTECODE": "1",
    # Unbuffered, so what the code printed before a kill still comes back.
    "PYTHONUNBUFFERED": "1",
    # BLAS thread pools count against the process limit and reserve address space per thread.
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


@dataclass(frozen=True)
class Interpreter:
    """The Python that runs sandboxed code: this process's own, with the same packages."""

    executable: Path
    base_prefix: Path
    venv_dirs: tuple[Path, ...]
    """site-packages dirs relative to the venv root; empty when Fawn does not run in a venv."""
    venv_root: Path | None

    @classmethod
    def current(cls) -> Interpreter:
        """This interpreter, resolved to its installed binary and its venv's site-packages."""
        base_prefix = Path(sys.base_prefix)
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        installed = base_prefix / "bin" / f"python{version}"
        executable = installed if installed.exists() else Path(os.path.realpath(sys.executable))
        if sys.prefix == sys.base_prefix:
            return cls(executable, base_prefix, (), None)
        venv_root = Path(sys.prefix)
        paths = sysconfig.get_paths()
        dirs = {Path(paths[key]).relative_to(venv_root) for key in ("purelib", "platlib")}
        return cls(executable, base_prefix, tuple(sorted(dirs)), venv_root)

    @property
    def sandbox_python(self) -> str:
        """The interpreter path that sandboxed code is started with."""
        return f"{VENV}/bin/python" if self.venv_root else str(self.executable)


def resolve_bwrap(bwrap: str) -> str:
    """The full path of the bwrap binary; SandboxError (with the fix) when it is missing."""
    found = shutil.which(bwrap)
    if found is None:
        raise SandboxError(
            f"bubblewrap ({bwrap}) is not installed or not on PATH, so model-written code cannot "
            f"run safely and the coder is switched off. {INSTALL_HINT}."
        )
    return found


def sandbox_uid() -> int | None:
    """The uid sandboxed code runs as when Fawn is root; None to keep the current user."""
    if os.geteuid() != 0:
        return None
    return SANDBOX_UIDS.start + secrets.randbelow(len(SANDBOX_UIDS))


def boot_failed(exit_code: int | None, stderr: str) -> bool:
    """True when boot.py could not set the limits up, so the code never ran."""
    return exit_code == FAILED_EXIT and FAILED_MARKER in stderr


def setup_failure(stderr: str) -> SandboxError:
    """The error for a bwrap that started but could not build the sandbox."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    detail = lines[-1] if lines else "no message"
    return SandboxError(
        f"bubblewrap is installed but cannot create its sandbox here ({detail}), so model-written "
        "code cannot run and the coder is switched off. Let bwrap create namespaces: allow "
        "unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1; on Ubuntu "
        "24.04+ also kernel.apparmor_restrict_unprivileged_userns=0), or run the container with "
        "--cap-add SYS_ADMIN --security-opt seccomp=unconfined --security-opt apparmor=unconfined."
    )


def read_exit_code(status_fd: int) -> int | None:
    """The sandboxed command's exit code from bwrap's JSON status; None if it never started.

    bwrap writes `{"exit-code": N}` only when the sandbox was set up and the command ran, so its
    absence is how a setup failure is told apart from code that failed.
    """
    os.set_blocking(status_fd, False)
    data = b""
    with suppress(BlockingIOError):
        while chunk := os.read(status_fd, 65_536):
            data += chunk
    for line in data.decode(errors="replace").splitlines():
        with suppress(ValueError):
            document = json.loads(line)
            if isinstance(document, dict) and isinstance(document.get("exit-code"), int):
                return int(document["exit-code"])
    return None


def bwrap_command(
    bwrap: str,
    interpreter: Interpreter,
    space: Workspace,
    limits: SandboxLimits,
    *,
    uid: int | None,
    status_fd: int,
) -> list[str]:
    """The full argv that runs `space.script` under bwrap with `limits`."""
    if uid is None:
        isolation = ["--unshare-all", "--unshare-user", "--disable-userns"]
    else:
        # As root, bwrap would map the sandbox to uid 0 in a user namespace, which is still root to
        # the process limit. So: no user namespace, and only the capabilities boot.py needs to
        # switch to `uid` (it loses them with the switch).
        isolation = [
            "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
            "--unshare-cgroup-try",
            "--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID",
        ]  # fmt: skip
    environment = [arg for name, value in SANDBOX_ENV.items() for arg in ("--setenv", name, value)]
    boot = [
        str(interpreter.executable), "-I", "-S", BOOT,
        str(limits.cpu_seconds), str(limits.memory_mb * 2**20), str(limits.disk_mb * 2**20),
        str(limits.max_processes), str(-1 if uid is None else uid),
        "--", interpreter.sandbox_python, SCRIPT,
    ]  # fmt: skip
    return [
        bwrap,
        *isolation,
        "--die-with-parent", "--new-session", "--hostname", "sandbox",
        "--json-status-fd", str(status_fd),
        "--clearenv", *environment,
        "--proc", "/proc", "--dev", "/dev",
        *_mount_args(_mounts(interpreter, space)),
        "--remount-ro", "/", "--remount-ro", "/dev",
        "--chdir", WORK_DIR,
        *boot,
    ]  # fmt: skip


def _mounts(interpreter: Interpreter, space: Workspace) -> list[tuple[str, str, str]]:
    """(bwrap option, host source, sandbox path) for everything the sandbox shows."""
    mounts = []
    for path in SYSTEM_DIRS:
        if os.path.islink(path):
            mounts.append(("--symlink", os.readlink(path), path))
        elif os.path.isdir(path):
            mounts.append(("--ro-bind", path, path))
    mounts += [("--ro-bind-try", path, path) for path in ETC_ENTRIES]
    prefix = str(interpreter.base_prefix)
    if not any(interpreter.base_prefix.is_relative_to(path) for path in SYSTEM_DIRS):
        mounts.append(("--ro-bind", prefix, prefix))
    if interpreter.venv_root is not None:
        mounts += [
            ("--ro-bind", str(interpreter.venv_root / relative), f"{VENV}/{relative}")
            for relative in interpreter.venv_dirs
        ]
        mounts.append(("--ro-bind", str(space.venv_config), f"{VENV}/pyvenv.cfg"))
        mounts.append(("--symlink", str(interpreter.executable), f"{VENV}/bin/python"))
    return [
        *mounts,
        ("--ro-bind", str(Path(__file__).with_name("boot.py")), BOOT),
        ("--ro-bind", str(space.script), SCRIPT),
        ("--bind", str(space.work), WORK_DIR),
        ("--symlink", WORK_DIR, "/tmp"),
    ]


def _mount_args(mounts: list[tuple[str, str, str]]) -> list[str]:
    """bwrap options for `mounts`, each preceded by its parent dirs, made world-readable.

    bwrap would create missing parents (/root for a Python installed under /root/.pyenv) with
    mode 0700, which the unprivileged sandbox user could not enter.
    """
    parents = {str(parent) for _, _, path in mounts for parent in Path(path).parents}
    parents.discard("/")
    args = []
    for parent in sorted(parents, key=lambda path: (path.count("/"), path)):
        args += ["--perms", "0755", "--dir", parent]
    for option, source, destination in mounts:
        args += [option, source, destination]
    return args
