"""Mininet for dmvx's virtualenv: Debian's package, imported alone.

Debian's ``mininet`` package is what works here: it ships ``mnexec`` (the
small C helper every Mininet host is started with) and a Python 3 package in
``/usr/lib/python3/dist-packages``. PyPI's ``mininet`` has no ``mnexec``. The
venv is made without system site-packages, and putting that whole directory
on ``sys.path`` would let every other Debian Python package shadow or mix
with the venv's own. So only the ``mininet`` package is loaded from there,
by its spec; its submodules follow through the package's ``__path__``.
Mininet needs nothing outside the standard library.

Set ``DMVX_MININET_PATH`` to a directory holding another ``mininet`` package
to use that one instead.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import shutil
import sys
from types import ModuleType

from dmvx.exitstatus import EnvironmentProblem

DEBIAN_SITE = "/usr/lib/python3/dist-packages"
_FIX = "install Debian's mininet and bridge-utils packages (./run setup does)"


def load() -> ModuleType:
    """The ``mininet`` package, importing it on first use."""
    module = sys.modules.get("mininet")
    if module is not None:
        return module
    for tool in ("mnexec", "brctl", "tc", "ip", "ethtool"):
        if shutil.which(tool) is None:
            raise EnvironmentProblem(f"dmvx real: {tool} not found; {_FIX}")
    where = os.environ.get("DMVX_MININET_PATH", DEBIAN_SITE)
    spec = importlib.machinery.PathFinder.find_spec("mininet", [where])
    if spec is None or spec.loader is None:
        raise EnvironmentProblem(f"dmvx real: no mininet Python package in {where}; {_FIX}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["mininet"] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules["mininet"]
        raise
    return module
