"""docs/reliability.md's table from the outcomes the fault suite wrote ($SDPFLOW_FAULTS_JSON).

    python -m tests.faults.table faults.json
"""

from __future__ import annotations

import json
import sys
from collections import Counter


def table(outcomes: dict) -> str:
    rows = ["| scenario | trials | driver / worker / scheduler / other | completed without resume | resumed | survived "
            "| products lost | slowest driver end after the fault (s) |",
            "|---|---:|---|---:|---:|---:|---:|---:|"]
    for name, scenario in outcomes["scenarios"].items():
        trials = scenario["trials"]
        targets = Counter(trial["target"] for trial in trials)
        other = sum(count for target, count in targets.items() if target not in ("driver", "worker", "scheduler"))
        ended = [trial["driver_ended_s"] for trial in trials if trial["driver_ended_s"] is not None]
        rows.append(
            f"| {name} | {len(trials)} | {targets['driver']} / {targets['worker']} / {targets['scheduler']} / {other} "
            f"| {sum(1 for t in trials if t['driver_exit'] == 0)} | {sum(1 for t in trials if t['resumed'])} "
            f"| {sum(1 for t in trials if t['survived'])} | {sum(t['lost'] for t in trials)} "
            f"| {max(ended) if ended else '–'} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(table(json.loads(open(sys.argv[1]).read())))
