"""``python -m tests.differential --seeds 1-2000``: a local campaign against the real kube-scheduler.

Prints one line per seed, the agreement ratio and every disagreement class with the
seeds in it; ``--out DIR`` writes each (shrunk) reproducer as ``seed-N.yaml``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path


def parse_seeds(text: str) -> list[int]:
    seeds: list[int] = []
    for part in text.split(","):
        if "-" in part:
            lo, hi = part.split("-", 1)
            seeds.extend(range(int(lo), int(hi) + 1))
        elif part:
            seeds.append(int(part))
    return seeds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.differential", description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1-200", help="e.g. 1-2000 or 3,17,40-60")
    parser.add_argument("--shrink", type=int, default=40, metavar="RUNS",
                        help="referee runs spent shrinking each disagreement (0: print it unshrunk)")
    parser.add_argument("--out", type=Path, help="write reproducers here as seed-N.yaml")
    parser.add_argument("--quiet", action="store_true", help="only disagreements and the summary")
    args = parser.parse_args(argv)

    from tests.differential.campaign import check_seed, start_control_plane, Summary
    from tests.differential.referee import Referee

    def interrupt(_signum, _frame):   # SIGTERM too: stop and still print the summary
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, interrupt)

    seeds = parse_seeds(args.seeds)
    started = time.monotonic()
    cp = start_control_plane()
    summary = Summary()
    try:
        referee = Referee(cp)
        print(f"control plane up in {time.monotonic() - started:.1f}s; {len(seeds)} seeds", flush=True)
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
        for seed in seeds:
            r = check_seed(referee, seed, args.shrink)
            summary.add(r)
            status = r.judgement.status if r.judgement else "error"
            if status == "disagree":
                print(f"seed {seed}: DISAGREE {r.cls} ({r.seconds:.1f}s)\n{r.reproducer}", flush=True)
                if args.out:
                    (args.out / f"seed-{seed}.yaml").write_text(r.reproducer)
            elif status == "error":
                print(f"seed {seed}: referee error: {r.error[:500]}", flush=True)
            elif not args.quiet:
                print(f"seed {seed}: {status} {r.judgement.detail} ({r.seconds:.1f}s)", flush=True)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    finally:
        cp.stop()
    print(f"\n{summary.text()}\n({time.monotonic() - started:.0f}s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
