"""Per-query ranks of finished job runs, fetched from the MLflow store."""

from __future__ import annotations

import tempfile
from functools import lru_cache
from pathlib import Path

from harness.errors import UserError
from harness.statistics.ranks import QueryRanks
from harness.tracking import RANKS_ARTIFACTS


@lru_cache(maxsize=4096)
def fetch_ranks(tracking_uri: str, run_id: str, protocol: str) -> QueryRanks | None:
    """The run's ranks for `protocol`, or None if it has none (e.g. logged by an older version).

    A finished run's artifacts never change, so each is downloaded once per process (the
    leaderboard and its slices read the same runs).
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory() as folder:
        try:
            path = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=f"{RANKS_ARTIFACTS}/{protocol}.npz", dst_path=folder, tracking_uri=tracking_uri
            )
        except (MlflowException, OSError):
            return None
        return QueryRanks.load(Path(path))


def require_ranks(tracking_uri: str, run_id: str, protocol: str) -> QueryRanks:
    ranks = fetch_ranks(tracking_uri, run_id, protocol)
    if ranks is None:
        raise UserError(f"run {run_id} has no per-query ranks for protocol '{protocol}' (ranks/{protocol}.npz) in {tracking_uri}")
    return ranks


def first_protocol(tracking_uri: str, run_id: str) -> str:
    """The first protocol a run's per-query ranks were stored for (``ranks/<protocol>.npz``)."""
    import mlflow

    from harness.errors import UserError

    try:
        files = mlflow.MlflowClient(tracking_uri).list_artifacts(run_id, RANKS_ARTIFACTS)
    except Exception as exc:  # an unknown run id
        raise UserError(f"run {run_id} in {tracking_uri}: {str(exc).splitlines()[0]}") from None
    names = [Path(item.path).stem for item in files]
    if not names:
        raise UserError(f"run {run_id} has no per-query ranks (ranks/*.npz); it was evaluated by an older itr-harness")
    return names[0]
