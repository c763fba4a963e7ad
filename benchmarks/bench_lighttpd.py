"""lighttpd natively, under dmon and under dmvx, in one run, with ab as the client.

dmvx runs twice: on the ptrace path and on the in-process path (``dmvx run
--in-process on``, row ``dmvx in-process``), on one machine and with
``--topology`` alike.

    .venv/bin/python benchmarks/bench_lighttpd.py [--requests 10000] [--sample 500] [--no-dmon] [--json]
    .venv/bin/python benchmarks/bench_lighttpd.py --topology two-host [--policy dmvx] ...

Without ``--topology``: on this machine (``dmvx run``: two variants,
CONNECTORs on loopback). Per configuration: start Debian's lighttpd in the foreground, single process
(``server.max-worker = 0``), serving a static tree of files of several sizes;
fetch a sample of them and compare each body's SHA-256 with the file's; run
``ab -n REQUESTS -c 1`` on a 4 KiB file; read throughput and p50/p99 latency
from ab; stop the run with SIGTERM (lighttpd never ends by itself) and take a
divergence as ``dmvx run`` reports it on stderr.

With ``--topology``: ``dmvx real``'s experiment (realmode/net/experiment.py,
``Served``) on the emulated hosts -- lighttpd natively on the leader's host,
then as leader and follower on the first two variant hosts, with the same
client on the client host each time (the digest sample, then ``ab``); the run
ends once the client is done, and no verdict by then is a clean run.

ASLR stays on: lighttpd keeps connection pointers in ``epoll_event.data``,
and real mode hands each variant its own data for the descriptor an event is
for (realmode/epoll.py; docs/case-study.md, "the epoll gap").

Needs root (ptrace, port 8089 on 127.0.0.1), lighttpd and ab.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# The tree, config and digests are dmvx real --server lighttpd's.
from dmvx.exitstatus import EnvironmentProblem, ExitStatus  # noqa: E402
from realmode.lighttpd_local import free_port, serve  # noqa: E402
from realmode.net import lighttpd  # noqa: E402
from realmode.net.lighttpd import two_host_config  # noqa: E402


def two_host_row(report: dict, which: str) -> dict:
    client = report[which] or {}
    ab, digests = client.get("ab") or {}, client.get("digests") or {}
    return {
        "run": which if which == "native" else report["config"],
        "requests": client.get("requests"),
        "requests_per_s": ab.get("requests_per_s"),
        "p50_ms": ab.get("p50_ms"),
        "p99_ms": ab.get("p99_ms"),
        "mean_ms": ab.get("mean_ms"),
        "failed": int(ab.get("failed") or 0) + int(ab.get("non_2xx") or 0),
        "bodies_checked": digests.get("checked"),
        "bodies_wrong": digests.get("wrong"),
        "error": client.get("error"),
    }


def run_topology(args: argparse.Namespace) -> int:
    """lighttpd on the emulated hosts, one experiment per policy."""
    if os.geteuid() != 0:
        raise SystemExit("--topology needs root (network namespaces, tracing)")
    from realmode.net.experiment import NetExperiment

    reports = []
    # dmvx on both paths, the ptrace one and the in-process one (dmon has
    # nothing fast: every call is lockstep).
    runs = [(p, fast) for p in args.policy.split(",") for fast in ((False, True) if p == "dmvx" else (False,))]
    for policy, fast in runs:
        with tempfile.TemporaryDirectory() as tmp:
            os.chmod(tmp, 0o755)
            config = two_host_config(Path(tmp), args.topology, policy, args.requests, args.sample, in_process=fast)
            result = NetExperiment(config).run()
        data = result.to_json()
        reports.append(
            {
                "config": policy + (" in-process" if fast else ""),
                "outcome": data["outcome"],
                "verdict": data["verdict"],
                "error": data["error"],
                "native": result.native,
                "mvx": result.mvx_client,
                "slowdown": data["slowdown"],
                "link": data["link"],
                "lead": data["lead"],
                "connector_rtt": data["connector_rtt"],
                "elapsed_s": data["elapsed_s"],
            }
        )
    if args.json:
        print(
            json.dumps(
                [
                    {k: v for k, v in r.items() if k not in ("native", "mvx")}
                    | {"rows": [two_host_row(r, "native"), two_host_row(r, "mvx")]}
                    for r in reports
                ],
                indent=2,
            )
        )
    else:
        print(
            f"lighttpd on {args.topology}: ab -n {args.requests} -c 1 on a 4 KiB file from the client host; "
            f"{args.sample} bodies checked by SHA-256 per run"
        )
        print(f"{'run':<24}{'done':>7}{'req/s':>9}{'p50 ms':>8}{'p99 ms':>8}{'mean ms':>9}{'wrong':>7}  outcome")
        for report in reports:
            for which in ("native", "mvx"):
                row = two_host_row(report, which)
                outcome = (
                    "-"
                    if which == "native"
                    else report["outcome"]
                    + (f" ({report['verdict']['summary']})" if report["verdict"] else "")
                    + (f" ({report['error']})" if report["error"] else "")
                )
                wrong = (row["bodies_wrong"] or 0) + row["failed"]
                print(
                    f"{row['run']:<17}{row['requests'] or 0:>7}{row['requests_per_s'] or 0:>9.1f}"
                    f"{row['p50_ms'] or 0:>8.0f}{row['p99_ms'] or 0:>8.0f}{row['mean_ms'] or 0:>9.3f}{wrong:>7}  "
                    f"{outcome}{'; ' + row['error'] if row['error'] else ''}"
                )
            if report["slowdown"] is not None:
                lead = report["lead"]
                # How far the follower lagged: a lead at the CB (4,096 calls) or of seconds
                # means the leader waited for the follower's side, not for the network.
                lag = (
                    f" ({lead['median_seconds']:.2f} s median, {lead['max_seconds']:.2f} s max)"
                    if lead.get("median_seconds") is not None and lead.get("max_seconds") is not None
                    else ""
                )
                print(
                    f"{'':<17}slowdown {report['slowdown']:.2f}x; link {report['link'].get('messages')} messages, "
                    f"lead max {lead.get('max_calls')} calls{lag}"
                )
        slowdowns = {r["config"]: r["slowdown"] for r in reports if r["slowdown"]}
        if "dmon" in slowdowns and "dmvx" in slowdowns:
            print(f"dmon/dmvx: {slowdowns['dmon'] / slowdowns['dmvx']:.2f} (ratio of the two slowdowns)")
    return 0 if all(r["outcome"] == "ok" for r in reports) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10000)
    parser.add_argument("--sample", type=int, default=500)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-dmon", action="store_true", help="leave dmon out (its run takes longest)")
    parser.add_argument("--topology", help="run on this dmvx real topology (say two-host) instead of one machine")
    parser.add_argument("--policy", default="dmvx", help="with --topology: policies, comma-separated (dmvx,dmon)")
    parser.add_argument(
        "--placement",
        choices=("split", "spread", "same", "lockstep", "none"),
        help="one machine: one more in-process row, with dmvx run --placement PLACEMENT, beside the default's",
    )
    args = parser.parse_args()
    for tool in ("lighttpd", "ab"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed (Debian: lighttpd, apache2-utils)")
    if args.topology:
        return run_topology(args)
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        config, digests = lighttpd.make_tree(Path(tmp), port, "127.0.0.1")
        runs = [(None, False, None), ("dmon", False, None), ("dmvx", False, None), ("dmvx", True, None)]
        if args.placement:
            runs.append(("dmvx", True, args.placement))
        rows = [
            asdict(
                serve(config, digests, policy, args.requests, args.sample, in_process=fast, port=port, placement=placed)
            )
            for policy, fast, placed in runs
            if not (args.no_dmon and policy == "dmon")
        ]
    native = rows[0]["requests_per_s"]
    for row in rows:
        row["slowdown"] = native / row["requests_per_s"]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"lighttpd, ab -n {args.requests} -c 1 on a 4 KiB file; {args.sample} bodies checked by SHA-256")
    print(f"{'run':<24}{'req/s':>10}{'p50 ms':>8}{'p99 ms':>8}{'mean ms':>9}{'slowdown':>10}{'wrong':>7}  divergence")
    for r in rows:
        print(
            f"{r['policy']:<24}{r['requests_per_s']:>10.1f}{r['p50_ms']:>8.0f}{r['p99_ms']:>8.0f}"
            f"{r['mean_ms']:>9.3f}{r['slowdown']:>9.2f}x{r['bodies_wrong'] + r['failed']:>7.0f}  "
            f"{r['divergence'] or 'none'}"
        )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except EnvironmentProblem as problem:  # no lighttpd or ab, a topology without the hosts, a host lost, ...
        print(problem, file=sys.stderr)
        sys.exit(ExitStatus.ENVIRONMENT)  # as dmvx real says it
