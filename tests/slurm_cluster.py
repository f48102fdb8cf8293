"""A real single-node Slurm (Debian's 22.05) for the Slurm tests, started and stopped by the tests.

``slurm_binaries()`` finds the daemons and client commands, or installs Debian's packages
(``PACKAGES``; root and apt-get, as CI has); when it can do neither it raises ``SlurmUnavailable``
naming what is missing, and the fixture (tests/conftest.py) fails under CI and skips elsewhere.

``SlurmCluster`` runs, with no systemd and nothing outside its own temporary directory:

* ``munged`` with a fresh key and its own socket, pid, log and seed files;
* ``mariadbd`` (a private data directory on a free 127.0.0.1 port) and ``slurmdbd`` on it, so
  that ``sacct`` answers; the accounts ``ml-research`` (root's) and ``decoy-team`` (nobody's);
* ``slurmctld`` and ``slurmd`` for cluster ``costwarden-test``: one node ``localhost``
  (NodeAddr 127.0.0.1; 16 CPUs, 64 GiB and ``gpu:h100:4`` declared, ``config_overrides`` so that
  slurmd accepts more than the machine has: the jobs only sleep), GPUs on dummy files
  ``<dir>/dev/nvidia[0-3]``, partitions ``gpu`` (default) and ``debug``, cons_tres,
  proctrack/linuxproc, task/none, no cgroup;
* JWT as an alternative authentication (``AuthAltTypes=auth/jwt``, a key in ``<dir>/etc/jwt.key``;
  Debian's ``slurm-wlm-jwt-plugin``), so that ``start_slurmrestd()`` can serve slurmrestd on a
  free port on demand, as user ``nobody`` (slurmrestd refuses root and SlurmUser), with a token
  from ``scontrol token`` in a file.

``SLURM_CONF`` (``cluster.conf``) is what every client command needs; the fixture exports it for
the test process. Daemons are stopped, and processes left by jobs of this cluster killed, at
``stop()``; the directory is removed.

The GPUs are typed (``h100``) because SkyPilot asks for ``--gres=gpu:<type>:<n>`` and only offers
nodes whose GRES names a type (see ``skypilot_batch_script``); untyped ``--gres=gpu:1`` works too.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CLUSTER_NAME = "costwarden-test"
NODE = "localhost"
GPU_TYPE = "h100"
NODE_GPUS = 4
NODE_CPUS = 16
NODE_MEMORY_MB = 65536
DEFAULT_PARTITION = "gpu"
PARTITIONS = ("gpu", "debug")
PARTITION_MAX_TIME = "1-00:00:00"  # what SkyPilot's `#SBATCH --time` is taken from
# Jobs without --time end (for the backfill scheduler) within the hour, so that a job pending for
# GPUs does not hold back the small ones behind it.
PARTITION_DEFAULT_TIME = "01:00:00"
ACCOUNT = "ml-research"  # root's default account
OTHER_USER = "nobody"  # the decoy jobs' user: exists on every Debian/Ubuntu, no user is created
OTHER_ACCOUNT = "decoy-team"

# Debian/Ubuntu packages: the daemons, the client commands, slurmrestd, munge, and accounting
# (slurmdbd on MariaDB). `make test` installs them (see the Makefile's slurm target).
PACKAGES = (
    "munge",
    "slurmctld",
    "slurmd",
    "slurm-client",
    "slurmrestd",
    "slurm-wlm-jwt-plugin",
    "slurmdbd",
    "mariadb-server",
)
# binary -> the package that has it
BINARIES = {
    "munged": "munge",
    "slurmctld": "slurmctld",
    "slurmd": "slurmd",
    "slurmstepd": "slurmd",
    "sbatch": "slurm-client",
    "squeue": "slurm-client",
    "sinfo": "slurm-client",
    "scontrol": "slurm-client",
    "scancel": "slurm-client",
    "sacct": "slurm-client",
    "sacctmgr": "slurm-client",
    "slurmrestd": "slurmrestd",
    "slurmdbd": "slurmdbd",
    "mariadbd": "mariadb-server",
    "mariadb-install-db": "mariadb-server",
}
# plugin file -> the package that has it: auth/jwt, which slurmctld and slurmdbd need to accept
# slurmrestd's tokens (AuthAltTypes=auth/jwt); Debian ships it apart from the basic plugins.
PLUGINS = {"auth_jwt.so": "slurm-wlm-jwt-plugin"}
# where the plugins are: Debian's, then RPMs' (globs under /)
PLUGIN_DIRS = ("usr/lib/*/slurm-wlm", "usr/lib64/slurm", "usr/lib/slurm")
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin", "/sbin", "/bin"])


class SlurmUnavailable(Exception):
    """Why there is no Slurm to run: what is missing, or the daemon's log line that says why."""


def _find_plugin(name: str) -> str | None:
    for pattern in PLUGIN_DIRS:
        for directory in sorted(Path("/").glob(pattern)):
            if (directory / name).exists():
                return str(directory / name)
    return None


def _find_all() -> tuple[dict[str, str], list[str]]:
    found: dict[str, str] = {}
    missing: list[str] = []
    for name in BINARIES:
        path = shutil.which(name, path=SEARCH_PATH)
        if path is None:
            missing.append(name)
        else:
            found[name] = path
    for name in PLUGINS:
        path = _find_plugin(name)
        if path is None:
            missing.append(name)
        else:
            found[name] = path
    return found, missing


def _describe(missing: Iterable[str]) -> str:
    names = list(missing)
    packages = sorted({BINARIES.get(name) or PLUGINS[name] for name in names})
    return f"{', '.join(names)} (Debian packages {' '.join(packages)})"


def slurm_binaries() -> dict[str, str]:
    """The paths of the Slurm, munge and MariaDB programs, installing Debian's packages when missing."""
    found, missing = _find_all()
    if not missing:
        return found
    if shutil.which("apt-get") is None:
        raise SlurmUnavailable(
            f"missing {_describe(missing)} and there is no apt-get to install them with: "
            f"install {' '.join(PACKAGES)} (Slurm 22.05 or later)"
        )
    if os.geteuid() != 0:
        raise SlurmUnavailable(
            f"missing {_describe(missing)}; installing them needs root: run "
            f"`sudo apt-get install -y --no-install-recommends {' '.join(PACKAGES)}`"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
    for command in (["apt-get", "update", "-q"], install):
        try:
            done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900, check=False)
        except subprocess.TimeoutExpired:
            raise SlurmUnavailable(f"`{' '.join(command)}` did not finish within 900 s") from None
        if done.returncode != 0:
            tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
            raise SlurmUnavailable(
                f"`{' '.join(command)}` failed (exit {done.returncode}): " + " | ".join(tail)
            )
    found, missing = _find_all()
    if missing:
        raise SlurmUnavailable(
            f"apt-get installed {' '.join(PACKAGES)} but {_describe(missing)} are not there"
        )
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _why(log: Path, lines: int = 3) -> str:
    """The log lines that say why a daemon failed: its errors, else its last lines."""
    try:
        text = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return f"(no log at {log})"
    errors = [line for line in text if any(word in line.lower() for word in ("error", "fatal", "fail"))]
    chosen = (errors or text)[-lines:]
    return " | ".join(chosen) if chosen else f"(empty log {log})"


# Harmless character devices (null, zero, full, random) to stand for the GPUs: slurmd wants a
# device file for each GRES; nothing opens them (no cgroup device constraint here).
_HARMLESS_DEVICES = ((1, 3), (1, 5), (1, 7), (1, 8))


def _fake_device(path: Path, index: int) -> None:
    major, minor = _HARMLESS_DEVICES[index % len(_HARMLESS_DEVICES)]
    try:
        os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(major, minor))
    except OSError:  # no CAP_MKNOD: a plain file works too, slurmd only logs an error for it
        path.touch()


@dataclass
class Daemon:
    name: str
    process: subprocess.Popen[bytes]
    log: Path


@dataclass(frozen=True)
class Slurmrestd:
    """A running slurmrestd: its base URL and the file holding a JWT for ``user``."""

    url: str
    token_file: Path
    user: str
    log: Path


@dataclass
class Job:
    """A submitted job: its id, its name and the script file sbatch was given."""

    job_id: str
    name: str
    script: Path
    user: str = "root"


def skypilot_batch_script(
    cluster_name_on_cloud: str,
    *,
    num_nodes: int = 1,
    cpus: int = 4,
    memory_gb: int = 16,
    accelerator_type: str | None = GPU_TYPE,
    accelerator_count: int = 1,
    max_time: str = PARTITION_MAX_TIME,
    log_dir: str = ".sky_provision",
) -> str:
    """A batch script shaped as SkyPilot 0.14 writes the one job that is a Slurm "cluster", with a
    body that sleeps until the job is cancelled. Submit it with ``--partition=<partition>`` and no
    ``--job-name`` (the script names itself), as SkyPilot does.

    What SkyPilot does (repository skypilot-org/skypilot, SkyPilot 0.14 era: the stored file
    versions nearest 0.14; ``sky/__init__.py`` @ 00cc1b29 says 0.14.0rc1):

    * ``sky/provision/slurm/instance.py`` @ a2f08cfd, ``_create_virtual_instance``: a cluster is ONE
      batch job, ``#SBATCH --job-name={cluster_name_on_cloud}`` (the cluster's name on cloud:
      the typed name, lowercased, with ``-`` and a user hash; at most
      ``Slurm._MAX_CLUSTER_NAME_LEN_LIMIT`` = 120 characters, ``sky/clouds/slurm.py`` @ 0175c1b0),
      then ``--output`` and ``--error`` = ``.sky_provision/slurm-%j.out``, ``--nodes={count}``,
      ``--time={partition MaxTime as D-HH:MM:SS}`` (``format_slurm_duration``,
      ``sky/provision/slurm/utils.py`` @ 74da432b; UNLIMITED when the partition has none),
      ``--wait-all-nodes=1``, ``--no-requeue``, ``--cpus-per-task={cpus}``, ``--mem={memory}G`` and,
      when the task asks for GPUs, ``--gres=gpu:{accelerator_type}:{count}``. The body traps TERM
      (cleanup: kill the skylet, remove ``/tmp/<cluster>`` and ``~/.sky_clusters/<cluster>``),
      makes the cluster's directories with ``srun --nodes=N mkdir``, touches a ready file and runs
      ``sleep infinity``: the job runs until cancelled. The script is written to
      ``~/.sky_provision/<cluster>.sh`` on the login node.
    * ``sky/adaptors/slurm.py`` @ d5363baf, ``SlurmClient.submit_job``: ``sbatch
      --partition={partition} {script}``; the partition is the SkyPilot "zone" (the cluster's
      default partition unless one is asked for), the Slurm cluster its "region"
      (``sky/clouds/slurm.py``, ``make_deploy_resources_variables``). The job id is parsed from
      "Submitted batch job N". ``query_jobs``: ``squeue --me -h -o "%i" --states ... --name
      <cluster>``. One node's "instance id" is ``job{job_id}-{node}``
      (``sky/provision/slurm/utils.py``, ``instance_id``).
    * ``accelerator_type`` is the GPU type as the cluster's GRES spells it (``get_gres_gpu_type``:
      the node's type matched case-insensitively, else the requested name lowercased); a node
      with untyped GRES (``gpu:4``) is never offered (``check_instance_fits``). The default shape,
      4 CPUs and 16 GB with a GPU, is ``Slurm._DEFAULT_NUM_VCPUS_WITH_GPU`` = 4 and
      ``_DEFAULT_MEMORY_CPU_RATIO_WITH_GPU`` = 4.
    * Teardown (``instance.py``, ``terminate_instances``): ``squeue -h --name <cluster> -o "%T"``;
      a PENDING or CONFIGURING job gets ``scancel --name <cluster>``; RUNNING or SUSPENDED gets
      ``scancel --name <cluster> --signal TERM --full``; COMPLETING and terminal states are left
      alone. ``stop_instances`` raises NotImplementedError (``sky stop`` is unsupported on Slurm).
    """
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name={cluster_name_on_cloud}",
        f"#SBATCH --output={log_dir}/slurm-%j.out",
        f"#SBATCH --error={log_dir}/slurm-%j.out",
        f"#SBATCH --nodes={num_nodes}",
        f"#SBATCH --time={max_time}",
        "#SBATCH --wait-all-nodes=1",
        "# Let the job be terminated rather than requeued implicitly.",
        "#SBATCH --no-requeue",
        f"#SBATCH --cpus-per-task={cpus}",
        f"#SBATCH --mem={memory_gb}G",
    ]
    if accelerator_type is not None and accelerator_type.upper() != "NONE" and accelerator_count > 0:
        lines.append(f"#SBATCH --gres=gpu:{accelerator_type}:{accelerator_count}")
    lines += [
        "",
        "cleanup() {",
        '    echo "Cleaning up sky directories..."',
        "    exit 0",
        "}",
        "trap cleanup TERM",
        "",
        "sleep infinity &",
        "wait",
        "",
    ]
    return "\n".join(lines)


@dataclass
class SlurmCluster:
    """A private single-node Slurm; ``start()`` it (or use it as a context manager)."""

    binaries: dict[str, str]
    accounting: bool = True
    cpus: int = NODE_CPUS
    memory_mb: int = NODE_MEMORY_MB
    gpus: int = NODE_GPUS
    workdir: Path = field(init=False)
    conf: Path = field(init=False)
    env: dict[str, str] = field(init=False)
    started_s: float = 0.0  # how long start() took
    _daemons: list[Daemon] = field(default_factory=list, init=False)
    _jobs: list[Job] = field(default_factory=list, init=False)
    _slurmrestd: Slurmrestd | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if os.geteuid() != 0:
            raise SlurmUnavailable(
                "a private Slurm needs root (slurmd runs each job as its user, and the decoy jobs as "
                f"{OTHER_USER}); run the Slurm tests as root, as CI does"
            )
        # /tmp, not pytest's tmp_path: a unix socket path has to stay under 108 bytes, and the
        # decoy user (nobody) must be able to reach its job's directory.
        self.workdir = Path(tempfile.mkdtemp(prefix="cw-slurm-"))
        self.workdir.chmod(0o755)
        for name in ("etc", "state", "spool", "log", "run", "dev", "db"):
            (self.workdir / name).mkdir()
        (self.workdir / "munge").mkdir(mode=0o700)
        self.jobs_dir = self.workdir / "jobs"
        self.jobs_dir.mkdir()
        self.jobs_dir.chmod(0o1777)
        self.conf = self.workdir / "etc" / "slurm.conf"
        self.munge_socket = self.workdir / "munge" / "munge.socket"
        self.hostname = socket.gethostname().split(".")[0]
        self.ports = {name: free_port() for name in ("slurmctld", "slurmd", "slurmdbd", "mariadb")}
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        for name in list(self.env):  # what a surrounding Slurm job or shell may have set
            if name.startswith(("SLURM_", "SBATCH_", "SQUEUE_", "SACCT_", "SRUN_")) and name != "SLURM_CONF":
                del self.env[name]

    # -- life cycle ---------------------------------------------------------------------------

    def __enter__(self) -> SlurmCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 60) -> SlurmCluster:
        """Start every daemon and wait for the node to be idle; SlurmUnavailable (after cleaning
        up) when one does not come up, with the log line that says why."""
        began = time.monotonic()
        try:
            self._write_configuration()
            self._start_munge(timeout)
            if self.accounting:
                self._start_database(timeout)
                self._start_slurmdbd(timeout)
                self._add_associations()
            self._start_slurmctld(timeout)
            self._start_slurmd(timeout)
            self._wait_node_idle(timeout)
            if self.accounting:
                self._wait_registered(timeout)
        except BaseException:
            self.stop()
            raise
        self.started_s = time.monotonic() - began
        return self

    def stop(self) -> None:
        """Cancel every job, stop the daemons (newest first), kill what jobs left, remove the
        directory. Only processes this cluster started are touched."""
        if any(d.name == "slurmctld" and d.process.poll() is None for d in self._daemons):
            with contextlib.suppress(Exception):
                self.cancel_all(timeout=20)
        for daemon in reversed(self._daemons):
            self._terminate(daemon.process)
        self._daemons.clear()
        self._kill_leftovers()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def stop_daemon(self, name: str) -> None:
        """Stop one daemon (``slurmctld``, ``slurmdbd``, ``slurmrestd``, ...) of this cluster, to see
        what clients make of its absence; the cluster is not meant to be used further after that."""
        for daemon in self._daemons:
            if daemon.name == name:
                self._terminate(daemon.process)

    @staticmethod
    def _terminate(process: subprocess.Popen[bytes]) -> None:
        if process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)

    def _kill_leftovers(self) -> None:
        """slurmstepd and job processes outlive slurmd; those of this cluster carry its SLURM_CONF
        (slurmd's environment, or the job's, exported from the test process)."""
        marker = f"SLURM_CONF={self.conf}".encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if marker in environ.split(b"\0"):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(int(entry.name), signal.SIGKILL)

    def _spawn(self, name: str, argv: Sequence[str]) -> Daemon:
        log = self.workdir / "log" / f"{name}.out"
        # Should the test process die without stop() (SIGKILL), each daemon gets SIGTERM.
        setpriv = shutil.which("setpriv", path=SEARCH_PATH)
        prefix = [setpriv, "--pdeathsig", "TERM"] if setpriv else []
        with log.open("ab") as out:
            process = subprocess.Popen(
                [*prefix, *argv], stdout=out, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
            )
        daemon = Daemon(name, process, log)
        self._daemons.append(daemon)
        return daemon

    def _wait(
        self, daemon: Daemon, ready: Callable[[], bool], timeout: float, logs: Sequence[Path] = ()
    ) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if daemon.process.poll() is not None:
                why = " | ".join(_why(log) for log in (daemon.log, *logs))
                raise SlurmUnavailable(
                    f"{daemon.name} did not start (exit {daemon.process.returncode}): {why}"
                )
            if ready():
                return
            if time.monotonic() > deadline:
                why = " | ".join(_why(log) for log in (daemon.log, *logs))
                raise SlurmUnavailable(f"{daemon.name} was not ready within {timeout:.0f} s: {why}")
            time.sleep(0.1)

    # -- munge --------------------------------------------------------------------------------

    def _start_munge(self, timeout: float) -> None:
        key = self.workdir / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        munge_dir = self.workdir / "munge"
        daemon = self._spawn(
            "munged",
            [
                self.binaries["munged"],
                "--foreground",
                "--force",  # root, and a socket directory under /tmp
                f"--socket={self.munge_socket}",
                f"--key-file={key}",
                f"--pid-file={munge_dir / 'munged.pid'}",
                f"--log-file={self.workdir / 'log' / 'munged.log'}",
                f"--seed-file={munge_dir / 'munged.seed'}",
            ],
        )
        self._wait(daemon, self.munge_socket.exists, timeout, [self.workdir / "log" / "munged.log"])

    # -- accounting ---------------------------------------------------------------------------

    def _start_database(self, timeout: float) -> None:
        datadir = self.workdir / "db"
        log = self.workdir / "log" / "mariadb.log"
        install = subprocess.run(
            [
                self.binaries["mariadb-install-db"],
                "--no-defaults",
                f"--datadir={datadir}",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
            ],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            check=False,
        )
        if install.returncode != 0:
            tail = " | ".join((install.stdout + install.stderr).strip().splitlines()[-3:])
            raise SlurmUnavailable(f"mariadb-install-db failed (exit {install.returncode}): {tail}")
        daemon = self._spawn(
            "mariadbd",
            [
                self.binaries["mariadbd"],
                "--no-defaults",
                f"--datadir={datadir}",
                "--user=root",
                f"--socket={self.workdir / 'run' / 'mariadb.sock'}",
                f"--pid-file={self.workdir / 'run' / 'mariadb.pid'}",
                f"--log-error={log}",
                "--bind-address=127.0.0.1",
                f"--port={self.ports['mariadb']}",
                "--skip-name-resolve",
                "--innodb-buffer-pool-size=32M",
                "--innodb-log-file-size=16M",
                "--innodb-flush-log-at-trx-commit=0",
                "--performance-schema=OFF",
            ],
        )
        self._wait(daemon, lambda: _port_open(self.ports["mariadb"]), timeout, [log])

    def _start_slurmdbd(self, timeout: float) -> None:
        log = self.workdir / "log" / "slurmdbd.log"
        daemon = self._spawn("slurmdbd", [self.binaries["slurmdbd"], "-D"])
        self._wait(daemon, lambda: _port_open(self.ports["slurmdbd"]), timeout, [log])

    def _add_associations(self) -> None:
        cluster = f"cluster={CLUSTER_NAME}"
        steps = [
            ["add", "cluster", CLUSTER_NAME],
            ["add", "account", ACCOUNT, cluster, "description=ml", "organization=ml"],
            ["add", "account", OTHER_ACCOUNT, cluster, "description=decoys", "organization=other"],
            ["add", "user", "root", f"account={ACCOUNT}", f"defaultaccount={ACCOUNT}", cluster],
            [
                "add",
                "user",
                OTHER_USER,
                f"account={OTHER_ACCOUNT}",
                f"defaultaccount={OTHER_ACCOUNT}",
                cluster,
            ],
        ]
        for step in steps:
            done = self.run("sacctmgr", "-i", *step, check=False)
            if done.returncode != 0:
                raise SlurmUnavailable(
                    f"`sacctmgr {' '.join(step)}` failed (exit {done.returncode}): "
                    f"{(done.stdout + done.stderr).strip()} | {_why(self.workdir / 'log' / 'slurmdbd.log')}"
                )

    # -- slurmctld, slurmd --------------------------------------------------------------------

    def _start_slurmctld(self, timeout: float) -> None:
        log = self.workdir / "log" / "slurmctld.log"
        daemon = self._spawn("slurmctld", [self.binaries["slurmctld"], "-D", "-i"])
        self._wait(daemon, lambda: self.run("scontrol", "ping", check=False).returncode == 0, timeout, [log])

    def _start_slurmd(self, timeout: float) -> None:
        log = self.workdir / "log" / "slurmd.log"
        daemon = self._spawn("slurmd", [self.binaries["slurmd"], "-D", "-N", NODE])
        self._wait(daemon, lambda: _port_open(self.ports["slurmd"]), timeout, [log])

    # -- slurmrestd ---------------------------------------------------------------------------

    def start_slurmrestd(self, timeout: float = 30, token_lifespan_s: int = 7200) -> Slurmrestd:
        """slurmrestd on a free 127.0.0.1 port with JWT authentication (``-a rest_auth/jwt``,
        ``SLURM_JWT=daemon``), started on the first call and kept until ``stop()``; later calls
        return the same one.

        slurmrestd 22.05 refuses to run as root or SlurmUser (root here), or in their primary
        group, unless ``SLURMRESTD_SECURITY=disable_user_check``: as its man page asks, it drops
        to ``-u nobody -g nogroup`` (the decoy user, who owns no key) before serving. It needs no
        key itself: it hands each request's token to slurmctld and slurmdbd, which check it
        against ``AuthAltParameters=jwt_key`` (``AuthAltTypes=auth/jwt``). The token, for root
        (``scontrol token username=root``; SlurmUser may mint one for any user), is written to
        ``<dir>/etc/slurmrestd.token`` for ``X-SLURM-USER-TOKEN``, with ``X-SLURM-USER-NAME: root``.
        """
        if self._slurmrestd is not None:
            return self._slurmrestd
        entry = pwd.getpwnam(OTHER_USER)
        port = free_port()
        log = self.workdir / "log" / "slurmrestd.log"
        env = {**self.env, "SLURM_JWT": "daemon", "SLURMRESTD_DEBUG": "4"}
        plugins: list[str] = []
        if not self.accounting:  # the slurmdb plugins refuse to load without slurmdbd
            directory = Path(self.binaries["auth_jwt.so"]).parent
            names = sorted(path.stem.removeprefix("openapi_") for path in directory.glob("openapi_v*.so"))
            plugins = ["-s", ",".join(f"openapi/{name.replace('_', '.')}" for name in names)]
        with log.open("ab") as out:
            process = subprocess.Popen(
                [
                    self.binaries["slurmrestd"],
                    "-a",
                    "rest_auth/jwt",
                    *plugins,
                    "-u",
                    str(entry.pw_uid),
                    "-g",
                    str(entry.pw_gid),
                    f"127.0.0.1:{port}",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        daemon = Daemon("slurmrestd", process, log)
        self._daemons.append(daemon)
        self._wait(daemon, lambda: _port_open(port), timeout, [log])
        token_file = self.workdir / "etc" / "slurmrestd.token"
        token_file.write_text(self.mint_token("root", token_lifespan_s))
        self._slurmrestd = Slurmrestd(f"http://127.0.0.1:{port}", token_file, "root", log)
        return self._slurmrestd

    def mint_token(self, user: str = "root", lifespan_s: int = 7200) -> str:
        """A JWT for ``user`` from ``scontrol token`` (signed with the cluster's jwt key)."""
        done = self.run("scontrol", "token", f"username={user}", f"lifespan={lifespan_s}")
        for line in done.stdout.splitlines():
            if line.startswith("SLURM_JWT="):
                return line.removeprefix("SLURM_JWT=").strip()
        raise AssertionError(f"`scontrol token` printed no SLURM_JWT=: {done.stdout.strip()!r}")

    def node_state(self) -> str:
        """The node's state as sinfo prints it (idle, mixed, allocated, down*, ...)."""
        done = self.run("sinfo", "-h", "-N", "-n", NODE, "-o", "%T", check=False)
        return done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout.strip() else ""

    def _wait_node_idle(self, timeout: float) -> None:
        slurmd = next(d for d in self._daemons if d.name == "slurmd")
        logs = [self.workdir / "log" / "slurmd.log", self.workdir / "log" / "slurmctld.log"]
        self._wait(slurmd, lambda: self.node_state() == "idle", timeout, logs)

    def _wait_registered(self, timeout: float) -> None:
        """Until slurmctld has registered with slurmdbd (the cluster's ControlHost is set), the
        start of a job may not reach the database: sacct would show it as "allocation"."""
        slurmctld = next(d for d in self._daemons if d.name == "slurmctld")

        def registered() -> bool:
            done = self.run(
                "sacctmgr", "-n", "-P", "show", "cluster", CLUSTER_NAME, "format=ControlHost", check=False
            )
            return done.returncode == 0 and bool(done.stdout.strip())

        self._wait(slurmctld, registered, timeout, [self.workdir / "log" / "slurmctld.log"])

    def _write_configuration(self) -> None:
        w = self.workdir
        dev = w / "dev"
        for index in range(self.gpus):
            _fake_device(dev / f"nvidia{index}", index)
        auth = f"AuthInfo=socket={self.munge_socket}"
        # slurmrestd's JSON Web Tokens (start_slurmrestd): slurmctld and slurmdbd check them with
        # this key; munge stays the main authentication of the daemons and client commands.
        jwt_key = w / "etc" / "jwt.key"
        jwt_key.write_bytes(os.urandom(32).hex().encode())
        jwt_key.chmod(0o600)
        jwt = ["AuthAltTypes=auth/jwt", f"AuthAltParameters=jwt_key={jwt_key}"]
        accounting = (
            [
                "AccountingStorageType=accounting_storage/slurmdbd",
                "AccountingStorageHost=localhost",
                f"AccountingStoragePort={self.ports['slurmdbd']}",
                # the munge socket for connections to slurmdbd (AuthInfo is not used for those)
                f"AccountingStoragePass={self.munge_socket}",
                "AccountingStorageTRES=gres/gpu",
                "AccountingStorageEnforce=associations",
            ]
            if self.accounting
            else ["AccountingStorageType=accounting_storage/none"]
        )
        partitions = [
            f"PartitionName={name} Nodes={NODE} Default={'YES' if name == DEFAULT_PARTITION else 'NO'} "
            f"DefaultTime={PARTITION_DEFAULT_TIME} MaxTime={PARTITION_MAX_TIME} State=UP"
            for name in PARTITIONS
        ]
        conf = [
            f"ClusterName={CLUSTER_NAME}",
            f"SlurmctldHost={self.hostname}(127.0.0.1)",
            f"SlurmctldPort={self.ports['slurmctld']}",
            f"SlurmdPort={self.ports['slurmd']}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            auth,
            "CredType=cred/munge",
            *jwt,
            f"StateSaveLocation={w / 'state'}",
            f"SlurmdSpoolDir={w / 'spool'}",
            f"SlurmctldPidFile={w / 'run' / 'slurmctld.pid'}",
            f"SlurmdPidFile={w / 'run' / 'slurmd.pid'}",
            f"SlurmctldLogFile={w / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={w / 'log' / 'slurmd.log'}",
            "SlurmctldDebug=info",
            "SlurmdDebug=info",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "SwitchType=switch/none",
            "MpiDefault=none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",
            "DefMemPerCPU=1024",
            "GresTypes=gpu",
            "SchedulerType=sched/backfill",
            "SchedulerParameters=bf_interval=1",  # backfill every second (30 s by default)
            "SlurmdParameters=config_overrides",
            "ReturnToService=2",
            "MinJobAge=600",  # finished jobs stay in squeue for 10 minutes
            "KillWait=2",  # SIGKILL 2 s after SIGTERM on cancel (30 s by default)
            "InactiveLimit=0",
            "SlurmctldTimeout=300",
            "SlurmdTimeout=300",
            "JobCompType=jobcomp/none",
            "MailProg=/bin/true",
            *accounting,
            f"NodeName={NODE} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.memory_mb} "
            f"Gres=gpu:{GPU_TYPE}:{self.gpus} State=UNKNOWN",
            *partitions,
        ]
        self.conf.write_text("\n".join(conf) + "\n")
        gres = f"Name=gpu Type={GPU_TYPE} File={dev}/nvidia[0-{self.gpus - 1}]\n"
        (w / "etc" / "gres.conf").write_text(gres)
        dbd = [
            "AuthType=auth/munge",
            auth,
            *jwt,
            "DbdHost=localhost",
            "DbdAddr=127.0.0.1",
            f"DbdPort={self.ports['slurmdbd']}",
            "SlurmUser=root",
            f"PidFile={w / 'run' / 'slurmdbd.pid'}",
            f"LogFile={w / 'log' / 'slurmdbd.log'}",
            "DebugLevel=info",
            "StorageType=accounting_storage/mysql",
            "StorageHost=127.0.0.1",
            f"StoragePort={self.ports['mariadb']}",
            "StorageUser=root",
            "StorageLoc=slurm_acct_db",
        ]
        dbd_conf = w / "etc" / "slurmdbd.conf"
        dbd_conf.write_text("\n".join(dbd) + "\n")
        dbd_conf.chmod(0o600)

    # -- commands -----------------------------------------------------------------------------

    def run(
        self, command: str, *args: str, check: bool = True, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        """Run a Slurm client command against this cluster; AssertionError with its output when
        ``check`` and it fails."""
        done = subprocess.run(
            [self.binaries.get(command, command), *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            output = (done.stdout + done.stderr).strip()
            raise AssertionError(f"`{command} {' '.join(args)}` failed (exit {done.returncode}): {output}")
        return done

    def submit(
        self,
        script: str,
        *,
        name: str | None,
        partition: str | None = None,
        account: str | None = None,
        user: str | None = None,
        gres: str | None = "gpu:1",
        extra_args: Sequence[str] = (),
    ) -> str:
        """``sbatch --parsable`` the script; the job id. ``name=None`` leaves the name to the
        script's ``#SBATCH --job-name``; ``gres=None`` asks for no GPU (or leaves it to the
        script). ``user`` submits as that local user (``sbatch --uid/--gid``, which root may do):
        the job runs as them, in their default account unless ``account`` is given."""
        index = len(self._jobs)
        path = self.jobs_dir / f"job-{index}.sh"
        path.write_text(script if script.startswith("#!") else "#!/bin/bash\n" + script)
        path.chmod(0o755)
        args = ["--parsable", f"--chdir={self.jobs_dir}"]
        if "--output" not in script:
            args.append(f"--output={self.jobs_dir}/slurm-%j.out")
        if name is not None:
            args.append(f"--job-name={name}")
        if partition is not None:
            args.append(f"--partition={partition}")
        if account is not None:
            args.append(f"--account={account}")
        if gres is not None:
            args.append(f"--gres={gres}")
        if user is not None:
            entry = pwd.getpwnam(user)
            args += [f"--uid={entry.pw_uid}", f"--gid={entry.pw_gid}"]
        done = self.run("sbatch", *args, *extra_args, str(path))
        job_id = done.stdout.strip().split(";")[0]
        self._jobs.append(Job(job_id, name or "", path, user or "root"))
        return job_id

    def submit_skypilot(
        self, cluster_name_on_cloud: str, *, partition: str = DEFAULT_PARTITION, **shape: Any
    ) -> str:
        """Submit ``skypilot_batch_script(...)`` as SkyPilot does: ``sbatch --partition=<p> <script>``."""
        script = skypilot_batch_script(cluster_name_on_cloud, log_dir=str(self.jobs_dir), **shape)
        return self.submit(script, name=None, partition=partition, gres=None)

    def squeue_json(self, *args: str) -> dict[str, Any]:
        """``squeue --json`` (every job slurmctld still holds: running, pending, suspended, and the
        finished ones for MinJobAge)."""
        return dict(json.loads(self.run("squeue", "--json", *args).stdout))

    def sacct_json(self, *args: str) -> dict[str, Any]:
        """``sacct --json`` (by default every job of today, all users)."""
        if not self.accounting:
            raise SlurmUnavailable("this cluster runs without accounting (slurmdbd): sacct has nothing")
        if not any(arg.startswith(("-S", "--starttime", "-j", "--jobs")) for arg in args):
            args = ("--starttime=now-1days", *args)
        if not any(arg in ("-a", "--allusers") or arg.startswith(("-u", "--user")) for arg in args):
            args = ("--allusers", *args)
        return dict(json.loads(self.run("sacct", "--json", *args).stdout))

    def scontrol_json(self, job_id: str) -> dict[str, Any]:
        """``scontrol show job <id> --json``."""
        return dict(json.loads(self.run("scontrol", "show", "job", job_id, "--json").stdout))

    def job(self, job_id: str) -> dict[str, Any] | None:
        """The job's entry in ``squeue --json`` (None once slurmctld has forgotten it);
        ``<array id>_<task id>`` finds an array task once it has a record of its own."""
        done = self.run("squeue", "--json", f"--jobs={job_id}", check=False)
        if done.returncode != 0:
            return None
        array, _, task = str(job_id).partition("_")
        for job in json.loads(done.stdout).get("jobs", []):
            if task:
                if str(job.get("array_job_id")) == array and str(job.get("array_task_id")) == task:
                    return dict(job)
            elif str(job.get("job_id")) == str(job_id):
                return dict(job)
        return None

    @staticmethod
    def cancel_id(job: dict[str, Any]) -> str:
        """The id that names this squeue entry alone in scancel: ``<array>_<task>`` for an array
        task (22.05's scancel reads a task's own job id as an array of that id, and finds none)."""

        def number(value: Any) -> Any:
            return value.get("number") if isinstance(value, dict) and value.get("set") else value

        task, array = number(job.get("array_task_id")), number(job.get("array_job_id"))
        if isinstance(task, int) and array:
            return f"{array}_{task}"
        return str(job["job_id"])

    @staticmethod
    def state_of(job: dict[str, Any]) -> str:
        """``job_state``: a string in 22.05, a list of strings from 23.02 on."""
        state = job.get("job_state")
        if isinstance(state, list):
            return str(state[0]) if state else ""
        return str(state)

    def wait_state(self, job_id: str, state: str | Iterable[str], timeout: float = 30) -> dict[str, Any]:
        """Poll until the job is in ``state`` (or one of them); its squeue entry. AssertionError
        with the last state seen and the reason after ``timeout`` seconds."""
        wanted = {state} if isinstance(state, str) else set(state)
        deadline = time.monotonic() + timeout
        last: dict[str, Any] | None = None
        while True:
            last = self.job(job_id)
            if last is not None and self.state_of(last) in wanted:
                return last
            if time.monotonic() > deadline:
                seen = (
                    "not in squeue" if last is None else f"{self.state_of(last)} ({last.get('state_reason')})"
                )
                raise AssertionError(
                    f"job {job_id} not {'/'.join(sorted(wanted))} within {timeout} s: {seen}"
                )
            time.sleep(0.1)

    def wait_accounted(self, job_id: str, state: str, timeout: float = 30) -> dict[str, Any]:
        """Poll ``sacct`` until it shows the job complete in ``state``; the job's sacct entry.

        slurmctld sends a job's start record to slurmdbd a few seconds after the fact: a job that
        started and ended before that shows in sacct meanwhile named "allocation", with no
        partition and no time limit. This waits for the partition too."""
        deadline = time.monotonic() + timeout
        seen = "not in sacct"
        while True:
            for job in self.sacct_json(f"--jobs={job_id}").get("jobs", []):
                if str(job.get("job_id")) == str(job_id):
                    current = job.get("state", {}).get("current")
                    current = current[0] if isinstance(current, list) and current else current
                    if current == state and job.get("partition"):
                        return dict(job)
                    seen = f"{current}, named {job.get('name')!r}, partition {job.get('partition')!r}"
            if time.monotonic() > deadline:
                raise AssertionError(f"sacct did not show job {job_id} {state} within {timeout} s: {seen}")
            time.sleep(0.2)

    def cancel_all(self, timeout: float = 20) -> None:
        """scancel every job not finished yet and wait until none is running, suspended or
        completing (a free node for the next test)."""
        active = {"PENDING", "RUNNING", "SUSPENDED", "COMPLETING", "CONFIGURING", "REQUEUED", "RESIZING"}
        jobs = self.squeue_json().get("jobs", [])
        # an array task by <array>_<task>: scancel takes a task's own job id for an array's id
        ids = sorted({self.cancel_id(job) for job in jobs if self.state_of(job) in active})
        if ids:
            self.run("scancel", *ids, check=False)
        deadline = time.monotonic() + timeout
        while any(self.state_of(job) in active for job in self.squeue_json().get("jobs", [])):
            if time.monotonic() > deadline:
                raise AssertionError(f"jobs still active {timeout} s after scancel: {ids}")
            time.sleep(0.1)
