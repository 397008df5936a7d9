"""Build the one Lambda bundle every canarywise function runs: ``build/lambda-bundle/``.

In a checkout of the repository the runtime wheels are ``requirements.txt`` pinned by ``constraints.txt``;
from an installed ``canarywise`` (``pip install canarywise[cdk]``, the construct in a team's own app) they are
the package's runtime dependencies at the versions installed next to it, and the bundle is built under
``./build`` (the CDK app's folder).

Why a build step of our own rather than CDK's Docker bundling: ``cdk synth`` must work offline, without Docker
and without credentials. pip can install manylinux wheels for another platform straight into a folder
(``--platform … --only-binary=:all: --target``), so the bundle is built here with the local pip, trimmed,
precompiled, and handed to CDK by ``stacks/functions.py`` through local bundling.

Two layers, each skipped when its inputs' hash is unchanged (a stamp file next to it):

- ``build/lambda-deps/``: the third-party wheels of ``requirements.txt`` (pinned by ``constraints.txt``),
  trimmed and compiled. Slow (tens of seconds); rebuilt only when the requirements or this script change.
- ``build/lambda-bundle/``: the deps (hard links, so no copy) plus our ``canarywise`` package. Rebuilt when
  any runtime source file changes; takes a second or two.

Precompiled ``.pyc``: ``/var/task`` is read-only in Lambda, so Python cannot cache the bytecode it compiles at
a cold start: without shipped ``.pyc`` every cold start recompiles numpy, scipy and pydantic. The ``.pyc``
are written with ``UNCHECKED_HASH`` invalidation, because zip archives keep mtimes at two-second resolution
and a timestamp-checked ``.pyc`` whose recorded mtime does not match would be silently ignored. The ``.py``
files are kept next to them: tracebacks then show source lines and ``inspect.getsource`` keeps working (a
few libraries read their own source), for about 5 MB (10%) more zipped size. Sourceless ``.pyc`` would be
smaller but is not safe for every package, so we do not do it.

Example
-------
    $ .venv/bin/python scripts/build_bundle.py      # prints the bundle's size zipped / unzipped
    $ .venv/bin/python scripts/build_bundle.py --hash   # the input hash only (what CDK uses as asset hash)
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import io
import json
import os
import py_compile
import re
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import canarywise

ROOT = Path(__file__).resolve().parents[1]
CHECKOUT = (ROOT / "lambdas" / "canarywise").is_dir() and (ROOT / "requirements.txt").is_file()
BUILD = ROOT / "build" if CHECKOUT else Path.cwd() / "build"
DEPS_DIR = BUILD / "lambda-deps"
BUNDLE_DIR = BUILD / "lambda-bundle"
PACKAGE_DIR = ROOT / "lambdas" / "canarywise" if CHECKOUT else Path(canarywise.__file__).resolve().parent
REQUIREMENTS = ROOT / "requirements.txt" if CHECKOUT else BUILD / "lambda-requirements.txt"
CONSTRAINTS = ROOT / "constraints.txt" if CHECKOUT else BUILD / "lambda-constraints.txt"

PYTHON_VERSION = "3.12"  # the Lambda runtime (stacks/functions.py uses Runtime.PYTHON_3_12)
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_28_x86_64")  # x86_64 functions; numpy/scipy ship both tags
# Provided by the Lambda Python runtime; a pinned copy would only add 20 MB and shadow the runtime's.
PROVIDED_BY_RUNTIME = ("boto3", "botocore", "s3transfer")
# Not needed at run time in Lambda: tests, C/Cython/Fortran sources and headers, type stubs, scripts.
TRIM_DIR_NAMES = frozenset({"__pycache__", "include"})  # removed when they hold no Python module
TRIM_SUFFIXES = (".pyi", ".pxd", ".pyx", ".c", ".cpp", ".h", ".hpp", ".f", ".f90", ".pc")
# Parts of our package the Lambdas never import: the operator CLI (needs rich), local mode (moto patches)
# and the demo (simulated traffic). Leaving them out also keeps their edits from re-uploading the bundle.
PACKAGE_EXCLUDES = frozenset({"cli", "local", "demo"})


def _hash_files(digest: hashlib._Hash, base: Path, files: Iterator[Path]) -> None:
    for path in sorted(files):
        digest.update(str(path.relative_to(base)).encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")


def _package_files() -> Iterator[Path]:
    for path in PACKAGE_DIR.rglob("*"):
        rel = path.relative_to(PACKAGE_DIR)
        if path.is_dir() or "__pycache__" in rel.parts or rel.parts[0] in PACKAGE_EXCLUDES:
            continue
        if path.suffix in {".py", ".typed", ".json", ".yaml", ".j2"}:  # .j2: the report's templates
            yield path


def _write_installed_pins() -> None:
    """Installed (not a checkout): pin the runtime dependencies of the ``canarywise`` distribution at the
    versions installed here (the bundle then runs what the synth environment runs)."""
    requires = metadata.requires("canarywise") or []
    names = [re.split(r"[\s;<>=!~\[]", line, maxsplit=1)[0] for line in requires if "extra ==" not in line]
    pins = "".join(f"{name}=={metadata.version(name)}\n" for name in names)
    BUILD.mkdir(exist_ok=True)
    for path in (REQUIREMENTS, CONSTRAINTS):
        if not path.is_file() or path.read_text() != pins:
            path.write_text(pins)


def deps_hash() -> str:
    """Hash of what decides the third-party layer: requirements, constraints, this script."""
    if not CHECKOUT:
        _write_installed_pins()
    digest = hashlib.sha256()
    for path in (REQUIREMENTS, CONSTRAINTS, Path(__file__).resolve()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def input_hash() -> str:
    """Hash of every input of the bundle; CDK uses it as the asset hash, so a change re-uploads the bundle.

    Example
    -------
    >>> len(input_hash())
    64
    """
    digest = hashlib.sha256(deps_hash().encode())
    _hash_files(digest, PACKAGE_DIR.parent, _package_files())
    return digest.hexdigest()


def _read_stamp(stamp: Path) -> dict[str, object]:
    try:
        data = json.loads(stamp.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _check_interpreter() -> None:
    # The .pyc format is interpreter-specific: compiling with 3.11 would give files Lambda's 3.12 ignores.
    if sys.version_info[:2] != (3, 12):
        found = sys.version.split()[0]
        raise SystemExit(
            f"build_bundle: run me with Python {PYTHON_VERSION} (the Lambda runtime), not {found}"
        )


def _compile(folder: Path) -> None:
    ok = compileall.compile_dir(
        folder,
        quiet=2,
        workers=2,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    if not ok:
        raise SystemExit(f"build_bundle: compiling {folder} failed")


def _trim(folder: Path) -> None:
    for name in PROVIDED_BY_RUNTIME:
        shutil.rmtree(folder / name, ignore_errors=True)
        for info in folder.glob(f"{name}-*.dist-info"):
            shutil.rmtree(info)
    shutil.rmtree(folder / "bin", ignore_errors=True)
    for path in sorted(folder.rglob("*"), reverse=True):  # children before parents
        if path.is_dir() and (
            path.name == "tests" or (path.name in TRIM_DIR_NAMES and not any(path.rglob("*.py")))
        ):
            shutil.rmtree(path)
        elif path.is_file() and path.suffix.lower() in TRIM_SUFFIXES:
            path.unlink()


def _build_deps() -> None:
    tmp = DEPS_DIR.with_name(DEPS_DIR.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
        *(arg for platform in PLATFORMS for arg in ("--platform", platform)),
        "--implementation", "cp", "--python-version", PYTHON_VERSION, "--only-binary=:all:",
        "--target", str(tmp), "-r", str(REQUIREMENTS), "-c", str(CONSTRAINTS),
    ]  # fmt: skip
    print("build_bundle: installing the runtime wheels for python3.12 / manylinux x86_64 …", flush=True)
    subprocess.run(command, check=True)
    _trim(tmp)
    _compile(tmp)
    shutil.rmtree(DEPS_DIR, ignore_errors=True)
    tmp.rename(DEPS_DIR)


def _copy_package(target: Path) -> None:
    for source in _package_files():
        dest = target / "canarywise" / source.relative_to(PACKAGE_DIR)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, dest)


def _link_or_copy(source: str, dest: str) -> None:
    try:
        os.link(source, dest)
    except OSError:  # another file system: a real copy
        shutil.copy2(source, dest)


def _sizes(folder: Path) -> dict[str, int]:
    """Unzipped bytes, and the size of the zip CDK will upload (deflate, as the CDK CLI does)."""
    unzipped = 0
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                unzipped += path.stat().st_size
                archive.write(path, path.relative_to(folder))
    return {"unzipped_bytes": unzipped, "zipped_bytes": buffer.getbuffer().nbytes}


def build(*, force: bool = False) -> Path:
    """Build ``build/lambda-bundle/`` if its inputs changed; return its path.

    Example
    -------
    >>> build().name
    'lambda-bundle'
    """
    started = time.monotonic()
    want = input_hash()
    bundle_stamp = BUILD / "lambda-bundle.stamp.json"
    stamp = _read_stamp(bundle_stamp)
    if not force and stamp.get("input_hash") == want and BUNDLE_DIR.is_dir():
        _report(stamp, "up to date", started)
        return BUNDLE_DIR

    _check_interpreter()
    BUILD.mkdir(exist_ok=True)
    deps_stamp = BUILD / "lambda-deps.stamp.json"
    if force or _read_stamp(deps_stamp).get("deps_hash") != deps_hash() or not DEPS_DIR.is_dir():
        _build_deps()
        deps_stamp.write_text(json.dumps({"deps_hash": deps_hash()}))

    tmp = BUNDLE_DIR.with_name(BUNDLE_DIR.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(DEPS_DIR, tmp, copy_function=_link_or_copy)
    _copy_package(tmp)
    _compile(tmp / "canarywise")
    stamp = {"input_hash": want, **_sizes(tmp)}
    shutil.rmtree(BUNDLE_DIR, ignore_errors=True)
    tmp.rename(BUNDLE_DIR)
    bundle_stamp.write_text(json.dumps(stamp))
    _report(stamp, "built", started)
    return BUNDLE_DIR


def _report(stamp: dict[str, object], what: str, started: float) -> None:
    mb = 1024 * 1024
    zipped = int(str(stamp.get("zipped_bytes", 0))) / mb
    unzipped = int(str(stamp.get("unzipped_bytes", 0))) / mb
    print(
        f"build_bundle: {BUNDLE_DIR} {what} in {time.monotonic() - started:.1f} s: "
        f"{zipped:.1f} MB zipped, {unzipped:.1f} MB unzipped (Lambda limits: 50 MB direct upload "
        "zipped — CDK uploads through S3 — and 250 MB unzipped)",
        file=sys.stderr,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--force", action="store_true", help="rebuild even when the inputs are unchanged")
    parser.add_argument("--hash", action="store_true", help="print the input hash and exit")
    args = parser.parse_args(argv)
    if args.hash:
        print(input_hash())
        return 0
    build(force=args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
