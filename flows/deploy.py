"""Serve the retraining flow on a cron schedule (a long-running process; stop it with SIGTERM).

    prefect server start --host 127.0.0.1          # once, elsewhere
    PREFECT_API_URL=http://127.0.0.1:4200/api python flows/deploy.py --cron "0 3 * * 1"

One run at a time (`global_limit=1`): DVC allows one `repro` per workspace.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flows.retrain import REPO, retrain  # noqa: E402

DEPLOYMENT = "scheduled-retrain"
DEFAULT_CRON = "0 3 * * 1"  # Mondays 03:00


def main() -> None:
    ap = argparse.ArgumentParser(description="serve the ecgml retraining flow on a schedule")
    ap.add_argument("--cron", default=DEFAULT_CRON)
    ap.add_argument("--timezone", default="UTC")
    ap.add_argument("--workdir", default=str(REPO))
    ap.add_argument("--name", default=DEPLOYMENT)
    ap.add_argument("--no-push", action="store_true")
    a = ap.parse_args()
    from prefect.schedules import Cron

    retrain.serve(
        name=a.name,
        schedules=[Cron(a.cron, timezone=a.timezone)],
        parameters={"workdir": a.workdir, "do_push": not a.no_push},
        global_limit=1,
        tags=["ecgml", "retrain"],
        description="Scheduled retraining: dvc repro stages, promotion by margin, dvc push",
    )


if __name__ == "__main__":
    main()
