"""A small job for the locking tests: lock --out, open (create and migrate) the SQLite store, log a run, hold."""

import sys
import time

from edgeopt.components._shared.errors import JobLockedError
from edgeopt.components._shared.job_lock import output_dir_lock

EXIT_LOCKED = 75


def main(out: str, store: str, hold_seconds: float) -> int:
    try:
        with output_dir_lock(out):
            # Imported under the lock: the losers exit at once, without paying for MLflow's import.
            from edgeopt.components.tracking.store import open_client

            client = open_client(f"sqlite:///{store}")
            experiment = client.get_experiment_by_name("locking")
            experiment_id = experiment.experiment_id if experiment else None
            if experiment_id is None:
                try:
                    experiment_id = client.create_experiment("locking")
                except Exception:  # another process created it meanwhile
                    experiment_id = client.get_experiment_by_name("locking").experiment_id
            run = client.create_run(experiment_id)
            client.set_terminated(run.info.run_id)
            time.sleep(hold_seconds)
    except JobLockedError as err:
        print(err, file=sys.stderr)
        return EXIT_LOCKED
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
