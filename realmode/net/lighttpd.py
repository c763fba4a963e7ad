"""Debian's lighttpd as a served program: ``dmvx real --server lighttpd``.

The case study's set-up (docs/case-study.md), shared with
``benchmarks/bench_lighttpd.py`` and :mod:`realmode.lighttpd_local`: lighttpd in the foreground, one process
(``server.max-worker = 0``), no modules, serving a static tree of random
files of 100 B, 4 KiB, 64 KiB and 1 MiB. The client host checks a sample of
bodies against the files' SHA-256 (round-robin over the sizes), then runs
``ab -c 1`` on the 4 KiB file (:func:`realmode.net.client.run_served`).

The tree is written afresh for every run, into a directory the caller owns
and removes; every host sees it (Mininet hosts share the filesystem).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from dmvx.exitstatus import EnvironmentProblem
from dmvx.topology import load_topology
from realmode.net.experiment import SERVER_PORT, Config, Served, Workload
from realmode.orchestrator import make_policy

#: The files of the tree and their sizes.
SIZES = {"f100.bin": 100, "f4k.bin": 4096, "f64k.bin": 65536, "f1m.bin": 1 << 20}
#: The file ``ab`` asks for.
AB_PATH = "/f4k.bin"
CONFIG = """server.document-root = "{root}"
server.port = {port}
server.bind = "{bind}"
server.max-worker = 0
server.errorlog = "{log}"
server.modules = ()
mimetype.assign = ( "" => "application/octet-stream" )
"""


def programs() -> tuple[str, str]:
    """The paths of lighttpd and ab; :class:`EnvironmentProblem` if one is missing."""
    # lighttpd lives in /usr/sbin, which a user's PATH may leave out.
    lighttpd = shutil.which("lighttpd") or shutil.which("lighttpd", path="/usr/sbin:/sbin")
    if lighttpd is None:
        raise EnvironmentProblem("lighttpd is not installed (Debian: apt-get install lighttpd, or ./run setup)")
    ab = shutil.which("ab")
    if ab is None:
        raise EnvironmentProblem("ab is not installed (Debian: apt-get install apache2-utils, or ./run setup)")
    return lighttpd, ab


def make_tree(directory: Path, port: int = SERVER_PORT, bind: str | None = None) -> tuple[Path, dict[str, str]]:
    """Write the static tree (``directory/www``) and lighttpd's config file
    into ``directory``: the config's path, and each file's SHA-256 by name.
    ``bind`` None serves on every address of the host (each emulated host
    has its own)."""
    www = directory / "www"
    www.mkdir()
    digests = {}
    for name, size in SIZES.items():
        data = os.urandom(size)
        (www / name).write_bytes(data)
        digests[name] = hashlib.sha256(data).hexdigest()
    config = directory / "lighttpd.conf"
    text = CONFIG.format(root=www, port=port, bind=bind, log=directory / "error.log")
    if bind is None:
        text = "".join(line + "\n" for line in text.splitlines() if not line.startswith("server.bind"))
    config.write_text(text)
    return config, digests


def served(directory: Path, sample: int, lighttpd: str | None = None) -> Served:
    """lighttpd on :data:`SERVER_PORT` of every address, with its tree, config
    and digest file in ``directory``; ``sample`` bodies checked per run."""
    config, digests = make_tree(directory)
    digest_file = directory / "digests.json"
    digest_file.write_text(json.dumps({f"/{name}": digest for name, digest in digests.items()}))
    program = lighttpd or programs()[0]
    return Served([program, "-D", "-f", str(config)], digest_file, AB_PATH, sample=sample, tree=directory)


def timeout(requests: int, sample: int) -> float:
    """Seconds a run of ``requests`` ab requests and ``sample`` checked bodies
    may take before it counts as stuck: generous, for dmon over slow links."""
    return 60.0 + 0.05 * requests + 0.1 * sample


def two_host_config(
    directory: Path, topology: str, policy: str, requests: int, sample: int, in_process: bool | None = None
) -> Config:
    """The :class:`realmode.net.experiment.Config` of lighttpd on ``topology``
    (files of every size in the sample, ab on the 4 KiB one), between its
    first two variant hosts and its first client host; ``in_process`` as
    :attr:`Config.in_process`."""
    topo = load_topology(topology)
    variants = topo.variant_hosts()
    clients = topo.hosts_with_role("client")
    if len(variants) < 2 or not clients:
        raise EnvironmentProblem(f"topology {topo.name!r} needs two variant hosts and a client host")
    return Config(
        topo,
        make_policy(policy),
        variants[:2],
        clients[0],
        Workload(requests=requests),
        served=served(directory, sample),
        timeout=timeout(requests, sample),
        in_process=in_process,
    )
