"""The `itr` command line.

Only click and the plugin manager are imported at start-up; torch, transformers and mlflow load
inside the commands that need them, so `itr --help` and `itr plugins` answer at once. Bad input
(`UserError`) is one line on stderr and exit code 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

import click

from harness import __version__
from harness.errors import EXIT_USAGE, UserError


class _State:
    def __init__(self, strict_plugins: bool, plugins_dir: Path | None, debug: bool) -> None:
        self.strict_plugins = strict_plugins
        self.plugins_dir = plugins_dir
        self.debug = debug
        self._host = None

    @property
    def host(self):
        if self._host is None:
            from harness.plugin_manager import PluginHost

            self._host = PluginHost(strict=self.strict_plugins, plugins_dir=self.plugins_dir)
        return self._host


results_option = click.option(
    "--results-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("results"),
    show_default=True,
    help="Where leaderboards and the default MLflow store go.",
)
cache_option = click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Feature cache (default: $ITR_CACHE_DIR or ~/.cache/itr-harness/features).",
)
tracking_option = click.option(
    "--tracking-uri",
    default=None,
    help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else the file's, else sqlite under --results-dir).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="itr")
@click.option("--strict-plugins", is_flag=True, help="Fail if any plugin cannot be loaded.")
@click.option(
    "--plugins-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Also load every *.py file in this folder as a plugin.",
)
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, strict_plugins: bool, plugins_dir: Path | None, debug: bool) -> None:
    """itr-harness: compare image-text retrieval methods on the same data and protocol."""
    ctx.obj = _State(strict_plugins, plugins_dir, debug)


@cli.command()
@click.pass_obj
def plugins(state: _State) -> None:
    """List every plugin with its version, hooks and the components it registered."""
    from tabulate import tabulate

    host = state.host
    rows = []
    for info in host.plugins.values():
        components = ", ".join(f"{spec.kind}:{spec.name}" for spec in host.registry.by_plugin(info.name))
        status = f"FAILED: {info.error}" if info.error else components or "-"
        rows.append([info.name, info.version, ", ".join(info.hooks) or "-", status])
    click.echo(tabulate(rows, headers=["plugin", "version", "hooks", "components"], tablefmt="simple"))


@cli.command()
@click.argument("experiment_file", type=click.Path(path_type=Path))
@click.pass_obj
def plan(state: _State, experiment_file: Path) -> None:
    """Validate EXPERIMENT_FILE and print the jobs it expands into."""
    from tabulate import tabulate

    from harness.experiment.jobs import plan as plan_jobs

    experiment, jobs = plan_jobs(experiment_file, state.host.registry)
    rows = [
        [job.label, job.method, job.dataset.name, job.seed, ", ".join(job.config.stages) or "(no training)", job.config_hash]
        for job in jobs
    ]
    click.echo(tabulate(rows, headers=["method", "recipe", "dataset", "seed", "stages", "config hash"], tablefmt="simple"))
    click.echo(f"{len(jobs)} jobs in experiment '{experiment.name}'")


@cli.command()
@click.argument("experiment_file", type=click.Path(path_type=Path))
@results_option
@tracking_option
@cache_option
@click.pass_obj
def run(state: _State, experiment_file: Path, results_dir: Path, tracking_uri: str | None, cache_dir: Path | None) -> None:
    """Run every job of EXPERIMENT_FILE, log it to MLflow and print the leaderboard."""
    from harness.experiment.jobs import plan as plan_jobs
    from harness.features import FeatureCache
    from harness.runner import run_experiment
    from harness.tracking import Tracker, choose_tracking_uri

    experiment, jobs = plan_jobs(experiment_file, state.host.registry)
    uri = choose_tracking_uri(tracking_uri, experiment.tracking_uri, results_dir)
    cache = FeatureCache(cache_dir)
    outcome = run_experiment(experiment.name, experiment_file, jobs, state.host, Tracker(uri, results_dir), cache)
    click.echo(f"feature cache {cache.root}: {cache.hits} reused, {cache.misses} computed", err=True)
    _show_leaderboard(state, uri, experiment.name, results_dir, parent_run_id=outcome.parent_run_id)
    for job, error in outcome.failed:
        click.echo(f"FAILED {job.title}: {error}", err=True)
    click.echo(f"{len(outcome.finished)} jobs finished, {len(outcome.failed)} failed", err=True)
    if outcome.failed:
        sys.exit(1)


@cli.command("eval")
@click.argument("run_id")
@click.option("--dataset", "dataset_name", default=None, help="Registered dataset to evaluate on (default: the job's).")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE", help="Dataset option, e.g. path=/data/coco_precomp (repeatable).")
@click.option("--split", default=None, help="Split to evaluate (default: the job's test split).")
@click.option("--protocol", "protocols", multiple=True, help="Protocol(s): full, coco-1k, coco-5k, f30k-1k (default: the job's).")
@results_option
@tracking_option
@cache_option
@click.pass_obj
def eval_checkpoint(
    state: _State,
    run_id: str,
    dataset_name: str | None,
    options: tuple[str, ...],
    split: str | None,
    protocols: tuple[str, ...],
    results_dir: Path,
    tracking_uri: str | None,
    cache_dir: Path | None,
) -> None:
    """Evaluate the checkpoint of job run RUN_ID (from `itr run`) on a dataset and protocol."""
    import tempfile

    from tabulate import tabulate

    from harness.checkpoints import read_job
    from harness.experiment.jobs import job_from_record
    from harness.features import FeatureCache
    from harness.runner import DataCatalog, evaluate_checkpoint
    from harness.tracking import choose_tracking_uri, download_checkpoint

    uri = choose_tracking_uri(tracking_uri, None, results_dir)
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = download_checkpoint(uri, run_id, Path(folder))
        job = job_from_record(read_job(checkpoint), f"run {run_id}")
        target = _dataset_entry(job.dataset, dataset_name, options, split, protocols)
        catalog = DataCatalog(state.host.registry, f"itr eval {run_id}")
        metrics = evaluate_checkpoint(job, checkpoint, state.host.registry, catalog, FeatureCache(cache_dir), target)
    rows = [[protocol, *(metrics[f"{protocol}/{key}"] for key in METRIC_COLUMNS)] for protocol in target.protocols]
    click.echo(f"{job.label} (run {run_id}) on {target.title}:{target.test}")
    click.echo(tabulate(rows, headers=["protocol", *METRIC_COLUMNS], tablefmt="github", floatfmt=".1f"))


METRIC_COLUMNS = ["i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "rsum"]


def _parse_options(options: tuple[str, ...]) -> dict:
    """``KEY=VALUE`` pairs; a value is read as JSON when it parses (numbers, true, lists), else text."""
    import json

    parsed = {}
    for option in options:
        key, sep, raw = option.partition("=")
        if not sep or not key:
            raise UserError(f"--option {option!r}: expected KEY=VALUE")
        try:
            parsed[key] = json.loads(raw)
        except json.JSONDecodeError:
            parsed[key] = raw
    return parsed


def _dataset_entry(job_dataset, dataset_name, options, split, protocols):
    """The job's dataset entry with the command line's changes, validated like a file's."""
    from pydantic import ValidationError

    from harness.experiment.config import DatasetEntry, format_validation_error

    fields = job_dataset.model_dump()
    if dataset_name is not None:
        fields.update(name=dataset_name, label=None, options={})
    fields["options"].update(_parse_options(options))
    if split is not None:
        fields["test"] = split
    if protocols:
        fields["protocols"] = list(protocols)
    try:
        return DatasetEntry.model_validate(fields)
    except ValidationError as exc:
        raise UserError(format_validation_error("itr eval", exc)) from None


@cli.command()
@click.argument("dataset_name", metavar="DATASET")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE", help="Dataset option (repeatable).")
@click.option("--split", "splits", multiple=True, help="Split(s) to extract (default: all).")
@click.option("--image-backbone", default="efficientnet-lite0", show_default=True)
@click.option("--text-backbone", default="minilm", show_default=True)
@click.option("--text/--no-text", default=True, show_default=True, help="Also cache frozen text features of the captions.")
@cache_option
@click.pass_obj
def features(
    state: _State,
    dataset_name: str,
    options: tuple[str, ...],
    splits: tuple[str, ...],
    image_backbone: str,
    text_backbone: str,
    text: bool,
    cache_dir: Path | None,
) -> None:
    """Extract and cache the frozen backbone features of DATASET (resumes where it stopped)."""
    from tabulate import tabulate

    from harness.features import CachedTextBackbone, FeatureCache, split_image_features

    registry = state.host.registry
    dataset = registry.get("dataset", dataset_name).build(_parse_options(options), f"itr features {dataset_name}")
    cache = FeatureCache(cache_dir)
    image_model = registry.get("image-backbone", image_backbone).build({}, f"--image-backbone {image_backbone}")
    frozen_text = CachedTextBackbone(
        lambda: registry.get("text-backbone", text_backbone).build({}, f"--text-backbone {text_backbone}"), cache
    )
    rows = []
    for split_name in splits or dataset.splits():
        split = dataset.load(split_name)
        arrays = dict(split_image_features(split, image_model, cache))
        if text:
            arrays.update({f"text.{name}": value for name, value in frozen_text.encode_texts(list(split.captions)).items()})
        shapes = ", ".join(f"{name} {tuple(value.shape[1:])}" for name, value in arrays.items())
        rows.append([split_name, split.n_images, split.n_captions, shapes])
    click.echo(tabulate(rows, headers=["split", "images", "captions", "features (per item)"], tablefmt="simple"))
    click.echo(f"feature cache {cache.root}: {cache.hits} reused, {cache.misses} computed", err=True)


@cli.command()
@click.argument("experiment_file", type=click.Path(path_type=Path), required=False)
@click.option("--experiment", "experiment_name", default=None, help="Experiment name (instead of a file).")
@results_option
@tracking_option
@click.pass_obj
def leaderboard(
    state: _State, experiment_file: Path | None, experiment_name: str | None, results_dir: Path, tracking_uri: str | None
) -> None:
    """Print and write the Recall@K / rSum leaderboard of an experiment."""
    from harness.experiment.config import load_experiment_file
    from harness.tracking import choose_tracking_uri

    file_uri = None
    if experiment_file is not None:
        experiment = load_experiment_file(experiment_file)
        experiment_name, file_uri = experiment.name, experiment.tracking_uri
    if not experiment_name:
        raise UserError("itr leaderboard: give an experiment file or --experiment NAME")
    _show_leaderboard(state, choose_tracking_uri(tracking_uri, file_uri, results_dir), experiment_name, results_dir)


def _show_leaderboard(
    state: _State, tracking_uri: str, name: str, results_dir: Path, parent_run_id: str | None = None
) -> None:
    from harness import leaderboard as board_module
    from harness.tracking import log_artifacts, require_experiment

    experiment_id = require_experiment(tracking_uri, name)
    board = board_module.leaderboard_table(board_module.job_results(tracking_uri, experiment_id))
    state.host.hook.on_leaderboard(frame=board)
    csv_path, md_path = board_module.write(board, results_dir / name)
    if parent_run_id is not None:
        log_artifacts(tracking_uri, parent_run_id, [csv_path, md_path], artifact_path="leaderboard")
    click.echo(board_module.render(board))
    click.echo(f"written: {csv_path}, {md_path}", err=True)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: runs the CLI, turning UserError into one line and exit code 2."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="itr", standalone_mode=False)
    except UserError as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
