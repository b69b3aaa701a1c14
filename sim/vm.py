"""Run code inside Debian's kernel under virtme-ng, for real IPVS.

Why: the development host's kernel has no IP_VS, and IPVS behaviour (the
scheduler, DR/NAT forwarding, what ``ipvsadm -Sn`` shows) can only be proven
against a real kernel.  virtme-ng boots the installed Debian kernel
(``/boot/vmlinuz-*``) with the host filesystem visible read-only plus a
copy-on-write overlay, so ``/work/main/.venv`` and the project work unchanged
inside; a ``--rwdir`` directory is shared read-write to bring files back.

Measured on this machine (``vng -r /boot/vmlinuz-6.1.0-56-amd64 --disable-kvm``):

- boot + a trivial script: about 35 s (TCG emulation; KVM hangs here, so
  ``--disable-kvm`` is mandatory); commands run roughly 20x slower than on the host.
- works inside: ``modprobe ip_vs`` (and the schedulers), ``ipvsadm -A/-a/-Sn``,
  pyroute2 ``IPVS().service("dump")``, ``ip netns add``, veth pairs, bridges,
  and even ``type dummy`` links (the guest kernel has them; the host has not),
  ``curl``, ``python3`` and the project venv, ``busybox``; uid 0.
- the script's stdout and stderr come back separately on vng's stdout/stderr;
  we also record the exit status in the rwdir, which does not depend on vng.
- ``/work/main`` is read-only-with-overlay: writes inside are lost at exit;
  anything to keep goes to the rwdir.
- cost inside: each process spawn ~0.5 s, a fresh Python importing pyroute2
  ~10-20 s (more when the host is loaded).  The interpreter, the standard
  library, the venv's runtime packages and the project are therefore handed
  to the guest as an ext2 image on a read-only virtio disk and laid over
  their host paths (:func:`_cache_image`): 9p has no cache, the image has the
  guest's page cache.  Hence :data:`sim.netns.SLOWDOWN` (x20 on timeouts when
  ``PYKEEP_IN_VM=1``), ``ip -batch`` and in-process sysctls in the rig, busybox
  httpd for the real servers, and one long-lived Python per VM run.
- end to end: ``python -m sim demo --keepalived`` (two keepalived 2.2.7
  directors, DR, HTTP_GET checks) balances rr, fails over in ~3.3 s and drains
  a stopped real server in ~5 s, inside the VM.

Every call has a timeout.  On timeout the qemu process and the rest of the vng
process tree are killed by PID (all of them are our descendants), so a hung
guest never outlives the caller.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shlex
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
IN_VM_ENV = "PYKEEP_IN_VM"
STARTED = ".started"
RC_FILE = ".rc"
PACKAGES = ("pykeep", "vrrp", "healthcheck", "ipvs", "sim", "tests")

Progress = Callable[[str, float], None]
"""Called about once a second with the phase ("booting", "running") and elapsed seconds."""


@dataclass
class VmResult:
    returncode: int
    stdout: str
    stderr: str
    files: dict[str, bytes] = field(default_factory=dict)
    elapsed: float = 0.0
    boot_seconds: float | None = None
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


class VmError(RuntimeError):
    pass


def kernel_image() -> str | None:
    """The newest Debian kernel image in /boot, or None."""
    images = sorted(glob.glob("/boot/vmlinuz-*"))
    return images[-1] if images else None


def vng_binary() -> str | None:
    venv_bin = Path(sys.executable).parent
    for cand in (venv_bin / "vng", PROJECT / ".venv" / "bin" / "vng"):
        if cand.exists():
            return str(cand)
    return shutil.which("vng")


def inside_vm() -> bool:
    return os.environ.get(IN_VM_ENV) == "1"


def kernel_has_ipvs(*, load: bool = True) -> bool:
    """True if this kernel has IP_VS (loading the module when ``load`` and allowed)."""
    if Path("/proc/net/ip_vs").exists():
        return True
    if load and os.geteuid() == 0 and shutil.which("modprobe"):
        subprocess.run(["modprobe", "-q", "ip_vs"], capture_output=True, timeout=30, check=False)
        return Path("/proc/net/ip_vs").exists()
    return False


def check_usable() -> str | None:
    """None if a VM can be booted, else a one-line reason."""
    if not kernel_image():
        return "no /boot/vmlinuz-* kernel image (apt-get install linux-image-amd64)"
    if not vng_binary():
        return "virtme-ng (vng) not installed in the venv"
    if not shutil.which("qemu-system-x86_64"):
        return "qemu-system-x86_64 not installed"
    if os.geteuid() != 0:
        return "VM tests run the guest as root with --user root; run as root"
    return None


def _descendants(root: int) -> list[int]:
    """PIDs under ``root``, deepest first (read from /proc, no external tools)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out: list[int] = []

    def walk(pid: int) -> None:
        for child in children.get(pid, []):
            walk(child)
            out.append(child)

    walk(root)
    return out


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _kill_tree(proc: subprocess.Popen[str]) -> None:
    """Kill qemu first, then every other descendant, then vng itself — by PID."""
    tree = _descendants(proc.pid)
    qemu = [p for p in tree if _comm(p).startswith("qemu")]
    for pid in [*qemu, *(p for p in tree if p not in qemu), proc.pid]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


def _wrapper(
    script: str, rwdir: Path, cwd: Path, env: dict[str, str], cached: Sequence[Path] = ()
) -> str:
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    return "\n".join(
        [
            "#!/bin/bash",
            f"touch {shlex.quote(str(rwdir / STARTED))}",
            *_cache_mounts(cached),
            f"export PATH={shlex.quote(str(Path(sys.executable).parent))}:$PATH",
            f"export {IN_VM_ENV}=1 PYTHONUNBUFFERED=1 {exports}",
            f"export PYKEEP_VM_RWDIR={shlex.quote(str(rwdir))}",
            f"cd {shlex.quote(str(cwd))}",
            "( " + script.rstrip() + "\n)",
            f"echo $? > {shlex.quote(str(rwdir / RC_FILE))}",
        ]
    )


CACHE_LABEL = "pykeep-cache"
#: Packages of the venv the daemon and the rigs import in the guest (others stay on 9p).
CACHED_PACKAGES = (
    "trio", "sniffio", "outcome", "attr", "attrs", "sortedcontainers", "idna", "structlog",
    "pyroute2", "h11", "_pytest", "pytest", "pluggy", "iniconfig", "packaging", "py.py",
    "aiosmtpd", "public", "typing_extensions.py", "__pycache__",
)  # fmt: skip
#: Parts of the standard library nothing in the guest imports (site-packages:
#: the interpreter's own, not the venv's).
STDLIB_SKIPPED = (
    "test", "idlelib", "tkinter", "lib2to3", "turtledemo", "ensurepip", "site-packages",
    "config-*", "distutils",
)  # fmt: skip


def _cached_paths() -> list[Path]:
    """The trees every guest Python start reads: stdlib, the packages above, the project."""
    paths = sysconfig.get_paths()
    stdlib, purelib = Path(paths["stdlib"]), Path(paths["purelib"])
    out = [stdlib, purelib, Path(sys.executable).resolve()]
    libpython = Path(sysconfig.get_config_var("LIBDIR") or "/") / (
        sysconfig.get_config_var("INSTSONAME") or "-"
    )
    if sysconfig.get_config_var("Py_ENABLE_SHARED") and libpython.is_file():
        out.append(libpython.resolve())  # mapped by every start, page by page over 9p
    return out + [PROJECT / pkg for pkg in PACKAGES]


def _cache_image(dest: Path) -> list[Path]:
    """Write an ext2 image of :func:`_cached_paths` to ``dest``; what it holds, or [] if no tool.

    Why: the guest sees the host's files over 9p without caching, so every
    Python start reads each module through the emulated transport again;
    from a block device the guest's page cache serves repeated reads.
    Measured in the guest under load: importing trio, pyroute2 and structlog
    took 155 s from 9p and 95-103 s from the image.  The image costs about
    2 s on the host per boot.  Directories are overlaid on the originals in
    the guest, so anything left out is still found on 9p.
    """
    mke2fs = shutil.which("mke2fs") or shutil.which("mke2fs", path="/sbin:/usr/sbin")
    if mke2fs is None:
        return []
    paths = _cached_paths()
    stdlib, purelib, *rest = paths
    members = [stdlib, *rest]
    members += [purelib / n for n in CACHED_PACKAGES if (purelib / n).exists()]
    members += [
        p for p in purelib.iterdir() if p.suffix == ".pth" or p.name.startswith("__editable__")
    ]
    staging = Path(tempfile.mkdtemp(prefix="pykeep-vm-cache-"))
    try:
        excludes = [f"--exclude={str(stdlib / n).lstrip('/')}" for n in STDLIB_SKIPPED]
        names = [str(m).lstrip("/") for m in members]
        pack = subprocess.Popen(
            ["tar", "-C", "/", "-cf", "-", *excludes, *names], stdout=subprocess.PIPE
        )
        subprocess.run(["tar", "-C", str(staging), "-xf", "-"], stdin=pack.stdout, check=True)
        pack.wait()
        files = sum(len(f) + len(d) for _, d, f in os.walk(staging))
        size_kb = sum(p.stat().st_size for p in staging.rglob("*") if p.is_file()) // 1024
        subprocess.run(
            [mke2fs, "-q", "-F", "-t", "ext2", "-L", CACHE_LABEL, "-N", str(files + 1024),
             "-d", str(staging), str(dest), f"{size_kb * 5 // 4 + 16384}k"],
            check=True, capture_output=True,
        )  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        dest.unlink(missing_ok=True)
        return []
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return paths


def _cache_mounts(cached: Sequence[Path]) -> list[str]:
    """Guest bash that mounts the image and lays it over the host paths (best effort)."""
    if not cached:
        return []
    top = "/run/pykeep-cache"
    lines = [
        f'if [ "$(blkid -o value -s LABEL /dev/vda 2>/dev/null)" = {CACHE_LABEL} ] &&'
        f" mkdir -p {top} && mount -o ro /dev/vda {top}; then"
    ]
    for p in cached:
        q, c = shlex.quote(str(p)), shlex.quote(f"{top}{p}")
        if p.is_dir():
            lines.append(f"  mount -t overlay pk -o ro,lowerdir={c}:{q} {q} 2>/dev/null || true")
        else:
            lines.append(f"  mount --bind {c} {q} 2>/dev/null || true")
    lines.append("fi")
    return lines


def _precompile() -> None:
    """Write the project's bytecode on the host before a boot.

    The guest sees the host's files read-only and, with PYTHONDONTWRITEBYTECODE
    set (as it is here), would compile every module again at each interpreter
    start: under emulation that is most of a minute per pykeep process.  The
    host does it in a second or two, once.
    """
    import compileall

    for pkg in PACKAGES:
        compileall.compile_dir(PROJECT / pkg, quiet=1)


def in_vm(
    script: str,
    timeout: float = 300.0,
    *,
    progress: Progress | None = None,
    on_stdout: Callable[[str], None] | None = None,
    rwdir: str | Path | None = None,
    cwd: str | Path = PROJECT,
    env: dict[str, str] | None = None,
    memory: str = "1G",
) -> VmResult:
    """Boot the Debian kernel, run bash ``script`` as root, return its result.

    ``on_stdout`` gets each stdout line as it arrives (for live demos).  The files
    the script leaves in ``$PYKEEP_VM_RWDIR`` come back in ``VmResult.files``.
    """
    problem = check_usable()
    if problem:
        raise VmError(problem)
    own_dir = rwdir is None
    rw = Path(rwdir) if rwdir is not None else Path(tempfile.mkdtemp(prefix="pykeep-vm-"))
    rw.mkdir(parents=True, exist_ok=True)
    for stale in (STARTED, RC_FILE):
        (rw / stale).unlink(missing_ok=True)
    _precompile()
    image_dir = Path(tempfile.mkdtemp(prefix="pykeep-vm-image-"))
    image = image_dir / "cache.img"
    cached = _cache_image(image)
    wrapper = rw / "run.sh"
    wrapper.write_text(_wrapper(script, rw, Path(cwd), env or {}, cached))
    argv = [str(vng_binary()), "-r", str(kernel_image()), "--disable-kvm", "--user", "root"]
    argv += ["--memory", memory, "--rwdir", str(rw), "--exec", f"bash {wrapper}"]
    if cached:
        argv.append(f"--qemu-opts=-drive file={image},format=raw,if=virtio,readonly=on")
    host_env = dict(os.environ)
    host_env["PATH"] = f"{Path(str(vng_binary())).parent}:{host_env.get('PATH', '')}"
    start = time.monotonic()
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        env=host_env,
        start_new_session=True,
    )
    out: list[str] = []
    err: list[str] = []

    def pump(stream: object, sink: list[str], cb: Callable[[str], None] | None) -> None:
        for line in stream:  # type: ignore[attr-defined]
            sink.append(line)
            if cb is not None:
                cb(line.rstrip("\n"))

    readers = [
        threading.Thread(target=pump, args=(proc.stdout, out, on_stdout), daemon=True),
        threading.Thread(target=pump, args=(proc.stderr, err, None), daemon=True),
    ]
    for t in readers:
        t.start()
    boot: float | None = None
    timed_out = False
    last_tick = -1.0
    try:
        while proc.poll() is None:
            elapsed = time.monotonic() - start
            if boot is None and (rw / STARTED).exists():
                boot = elapsed
            if elapsed > timeout:
                timed_out = True
                _kill_tree(proc)
                break
            if progress is not None and elapsed - last_tick >= 1.0:
                last_tick = elapsed
                progress("booting" if boot is None else "running", elapsed)
            time.sleep(0.2)
    except BaseException:
        _kill_tree(proc)
        raise
    finally:
        shutil.rmtree(image_dir, ignore_errors=True)
    for t in readers:
        t.join(timeout=5)
    files = {
        p.name: p.read_bytes()
        for p in rw.iterdir()
        if p.is_file() and p.name not in (STARTED, RC_FILE, "run.sh")
    }
    rc_path = rw / RC_FILE
    if timed_out:
        rc = -signal.SIGKILL
    elif rc_path.exists():
        rc = int(rc_path.read_text().strip() or 255)
    else:
        rc = proc.returncode if proc.returncode else 255  # guest died before the end
    if own_dir:
        shutil.rmtree(rw, ignore_errors=True)
    return VmResult(
        rc, "".join(out), "".join(err), files, time.monotonic() - start, boot, timed_out
    )


def in_vm_python(
    module: str, args: Sequence[str] = (), timeout: float = 300.0, **kw: object
) -> VmResult:
    """``python -m module args`` inside the VM with the project's interpreter."""
    script = shlex.join([sys.executable, "-m", module, *args])
    return in_vm(script, timeout, **kw)  # type: ignore[arg-type]


def stderr_progress(label: str = "booting VM") -> Progress:
    """A one-line ``\\r`` progress indicator on stderr while the VM boots."""
    shown = [False]

    def show(phase: str, elapsed: float) -> None:
        if phase == "booting":
            sys.stderr.write(f"\r{label} ({kernel_image()}, ~35 s)… {elapsed:3.0f}s")
            shown[0] = True
        elif shown[0]:
            sys.stderr.write("\r" + " " * 72 + "\r")
            shown[0] = False
        sys.stderr.flush()

    return show


def reexec_in_vm(argv: Sequence[str], timeout: float = 600.0, *, module: str = "sim") -> int:
    """Run ``python -m module argv`` inside the VM, streaming its output; its exit code.

    Used by ``python -m sim`` when the host kernel lacks IP_VS; the child sees
    ``PYKEEP_IN_VM=1`` and does not re-execute again.
    """
    if inside_vm():
        raise VmError("already inside the VM and the kernel still has no IP_VS")
    result = in_vm_python(
        module,
        list(argv),
        timeout,
        progress=stderr_progress(),
        on_stdout=lambda line: print(line, flush=True),
    )
    sys.stderr.write(result.stderr)
    if result.timed_out:
        print(f"pykeep-sim: VM run timed out after {timeout:.0f}s (qemu killed)", file=sys.stderr)
    return result.returncode


def ensure_ipvs_or_reexec(argv: Sequence[str], timeout: float = 600.0) -> int | None:
    """None when IPVS is usable here; otherwise re-run in the VM and return its code."""
    if kernel_has_ipvs():
        return None
    return reexec_in_vm(argv, timeout)
