"""The native CPU kernel for batched SGD: C built on first use, loaded with ctypes.

Nothing here is required: if no C compiler is found or the build fails, ``load()`` returns
None and the batched engine runs on torch alone. The library is cached per source, flags and
CPU (it is built with ``-march=native``) under ``$GDSCOPE_CACHE`` or ``~/.cache/gdscope``.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["library_path", "load"]

_SOURCE = Path(__file__).with_name("sgd_kernel.c")
_BODY = _SOURCE.with_name("sgd_body.inc")
_FLAGS = [
    "-O3",
    "-march=native",
    "-ffp-contract=off",
    "-fno-math-errno",
    "-fopenmp",
    "-shared",
    "-fPIC",
]


def _cpu_signature() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            flags = next((line for line in handle if line.startswith("flags")), "")
    except OSError:
        flags = ""
    return platform.machine() + flags


def library_path() -> Path:
    key = hashlib.sha256(
        _SOURCE.read_bytes()
        + _BODY.read_bytes()
        + " ".join(_FLAGS).encode()
        + _cpu_signature().encode()
    ).hexdigest()[:16]
    root = Path(os.environ.get("GDSCOPE_CACHE", Path.home() / ".cache" / "gdscope"))
    return root / f"sgd_kernel-{key}.so"


@functools.cache
def load() -> ctypes.CDLL | None:
    """The compiled kernel, building it if needed; None where that is not possible."""
    if os.environ.get("GDSCOPE_NO_NATIVE"):
        return None
    target = library_path()
    if not target.exists():
        compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
        if compiler is None:
            return None
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
                built = Path(scratch) / target.name
                subprocess.run(
                    [compiler, *_FLAGS, str(_SOURCE), "-o", str(built), "-lm"],
                    check=True,
                    capture_output=True,
                    timeout=120,
                )
                os.replace(built, target)  # atomic: concurrent builders never see half a file
        except (OSError, subprocess.SubprocessError):
            return None
    try:
        library = ctypes.CDLL(str(target))
    except OSError:
        return None
    for name in ("gdscope_sgd_f32", "gdscope_sgd_f64"):
        getattr(library, name).restype = None
    return library
