"""Start a dask cluster over SSH on CreoDIAS VMs and run the pipeline on it.

    python workflows/ssh_cluster.py --hosts 10.0.0.11 10.0.0.12 10.0.0.13 \
        -- --config workflows/lithuania.toml

The first host runs the scheduler, the others one worker process per core
(``--nworkers``), each with one thread and torch pinned to one thread. Every
VM needs the same environment (the docker image, or the README's setup in the
same path) and the EODATA mount. Arguments after ``--`` go to
``python -m pipeline run``; ``--scheduler`` is added. Needs ``asyncssh``
(``pip install asyncssh``), which dask's SSHCluster uses.
"""

from __future__ import annotations

import argparse
import sys


def main() -> int:
    """Start the SSH cluster, run the pipeline against it, shut it down."""
    argv = sys.argv[1:]
    rest: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, rest = argv[:i], argv[i + 1 :]
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--hosts", nargs="+", required=True, help="scheduler host first, then worker hosts"
    )
    ap.add_argument("--nworkers", type=int, default=4, help="worker processes per VM")
    ap.add_argument("--memory-limit", default="3.5GiB", help="memory limit per worker process")
    ap.add_argument(
        "--python",
        default="/opt/s1s2-gapfill/.venv/bin/python",
        help="interpreter on the VMs (the docker image's venv by default)",
    )
    args = ap.parse_args(argv)
    if len(args.hosts) < 2:
        ap.error("--hosts needs a scheduler host and at least one worker host")

    from distributed import SSHCluster

    from pipeline.__main__ import main as pipeline_main

    with SSHCluster(
        args.hosts,
        connect_options={"known_hosts": None},
        worker_options={
            "nworkers": args.nworkers,
            "nthreads": 1,
            "memory_limit": args.memory_limit,
        },
        scheduler_options={"port": 8786, "dashboard_address": ":8787"},
        remote_python=args.python,
    ) as cluster:
        print(f"dashboard: {cluster.dashboard_link}", file=sys.stderr)
        return pipeline_main(["run", *rest, "--scheduler", cluster.scheduler_address])


if __name__ == "__main__":
    sys.exit(main())
