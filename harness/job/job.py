"""A job: one method cell on one dataset with one seed, resolved, hashed and serialisable.

The `Job` is the unit every layer above passes around: the planner makes them, executors carry
their records to other processes, checkpoints keep the record beside the weights so `itr eval`
rebuilds exactly what was trained.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from pydantic import ValidationError

from harness.config.dotted import flatten
from harness.config.experiment_file import DatasetEntry, format_validation_error
from harness.config.job_config import JobConfig
from harness.config.roles import MODEL_ROLES
from harness.errors import UserError


def config_hash(payload: Mapping[str, Any]) -> str:
    """Stable 12-hex-digit hash of a JSON-able mapping (key order does not matter)."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]


@dataclass(frozen=True)
class Job:
    """One unit of work: train (if the method has stages) and evaluate one method on one dataset.

    `config` is resolved: every component carries all its options, defaults filled in
    (`harness.job.resolve`). `label` names the cell (``ascl[u1=0.8]``), `group` the method block
    it came from, and `axes` the cell's grid values (dotted key -> rendered value; empty outside
    a grid). `config_hash` changes whenever the computation would, and is what resume looks for.
    """

    label: str
    method: str
    dataset: DatasetEntry
    seed: int
    config: JobConfig
    config_hash: str
    group: str = ""
    axes: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def create(
        cls, label: str, method: str, dataset: DatasetEntry, seed: int, config: JobConfig, group: str = "", axes: Mapping[str, str] | None = None
    ) -> "Job":
        """A job with its hash: of the method, the resolved config, the dataset (its label
        aside: renaming a dataset on the leaderboard changes no result) and the seed.
        ``train.resume_every`` is left out: how often a job saves its progress changes no result;
        so is ``eval.memory_budget_mb``: the scores are the same whatever block size it leaves;
        and ``eval.rankings_top_k``: how much of each ranking is kept changes no metric."""
        settings = config.model_dump(exclude={"train": {"resume_every"}, "eval": {"memory_budget_mb", "rankings_top_k"}})
        payload = {"method": method, "config": settings, "dataset": dataset.model_dump(exclude={"label"}), "seed": seed}
        return cls(label, method, dataset, seed, config, config_hash(payload), group or label, dict(axes or {}))

    @property
    def title(self) -> str:
        return f"{self.label} on {self.dataset.title} (seed {self.seed})"

    @property
    def trains(self) -> bool:
        return bool(self.config.stages)

    def components(self) -> dict[str, str]:
        """Role -> component name, for tags and the leaderboard."""
        roles = {role: getattr(self.config, role).name for role in MODEL_ROLES}
        roles["losses"] = ",".join(stage.loss.name for stage in self.config.stages.values()) or "-"
        generators = [*self.config.generators.positives, *self.config.generators.negatives]
        roles["generators"] = ",".join(ref.name for ref in generators) or "-"
        return roles

    def params(self) -> dict[str, str]:
        """The resolved configuration flattened to dotted keys, for MLflow params."""
        return {key: value if isinstance(value, str) else json.dumps(value) for key, value in flatten(self.config.model_dump())}

    def to_record(self) -> dict[str, Any]:
        """What it takes to rebuild the job in another process or from a checkpoint (JSON-able)."""
        import harness

        return {
            "label": self.label,
            "group": self.group,
            "axes": dict(self.axes),
            "method": self.method,
            "dataset": self.dataset.model_dump(),
            "seed": self.seed,
            "config_hash": self.config_hash,
            "config": self.config.model_dump(),
            "itr_version": harness.__version__,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any], where: str) -> "Job":
        """The job `to_record` described; a damaged record is a UserError naming `where`."""
        try:
            config = record["config"] if "config" in record else _upgraded(record["resolved"])
            return cls(
                label=record["label"],
                method=record["method"],
                dataset=DatasetEntry.model_validate(record["dataset"]),
                seed=int(record["seed"]),
                config=JobConfig.model_validate(config),
                config_hash=record["config_hash"],
                group=record.get("group", record["label"]),
                axes=record.get("axes", {}),
            )
        except KeyError as exc:
            raise UserError(f"{where}: job record lacks {exc}") from None
        except ValidationError as exc:
            raise UserError(format_validation_error(where, exc)) from None


def _upgraded(resolved: Mapping[str, Any]) -> dict[str, Any]:
    """A record of itr-harness before the ``eval`` section: its evaluation settings sat in
    ``train`` (``eval_batch_size``, ``score_chunk``, and the device the job trained on)."""
    config = json.loads(json.dumps(resolved))
    train = config.setdefault("train", {})
    evaluation = {"device": train.get("device", "auto")}
    if "eval_batch_size" in train:
        evaluation["batch_size"] = train.pop("eval_batch_size")
    if "score_chunk" in train:
        evaluation["score_chunk"] = train.pop("score_chunk")
    config.setdefault("eval", evaluation)
    return config
