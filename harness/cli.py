"""The `itr` command line.

Only click and the plugin manager are imported at start-up; torch, transformers and mlflow load
inside the commands that need them, so `itr --help` and `itr plugins` answer at once. Bad input
(`UserError`) is one line on stderr and exit code 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import errno
import os
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
    cells = len({job.label for job in jobs})
    click.echo(
        f"{len(jobs)} jobs in experiment '{experiment.name}': {cells} method cells × "
        f"{len(experiment.datasets)} datasets × {len(experiment.seeds)} seeds"
    )


@cli.command()
@click.argument("experiment_file", type=click.Path(path_type=Path))
@results_option
@tracking_option
@cache_option
@click.option("--executor", "executor_name", default=None, help="in-process (default), local (worker processes) or ray.")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Concurrent jobs; more than 1 implies --executor local.")
@click.option("--executor-option", "executor_options", multiple=True, metavar="KEY=VALUE", help="Executor option, e.g. num_gpus=1 (repeatable).")
@click.option("--rerun-finished", is_flag=True, help="Run jobs again even if their configuration already finished.")
@click.pass_obj
def run(
    state: _State,
    experiment_file: Path,
    results_dir: Path,
    tracking_uri: str | None,
    cache_dir: Path | None,
    executor_name: str | None,
    workers: int | None,
    executor_options: tuple[str, ...],
    rerun_finished: bool,
) -> None:
    """Run the unfinished jobs of EXPERIMENT_FILE, log them to MLflow and print the leaderboard."""
    from harness.experiment.jobs import plan as plan_jobs
    from harness.experiment.run import Launch, run_experiment
    from harness.features import FeatureCache
    from harness.tracking import Tracker, choose_tracking_uri, require_reachable

    experiment, jobs = plan_jobs(experiment_file, state.host.registry)
    executor = _executor(state, executor_name, workers, executor_options)
    uri = choose_tracking_uri(tracking_uri, experiment.tracking_uri, results_dir)
    require_reachable(uri)
    cache = FeatureCache(cache_dir)
    launch = Launch(
        source=experiment_file,
        log_dir=results_dir / experiment.name / "logs",
        cache_dir=cache.root,
        plugins_dir=state.plugins_dir,
        strict_plugins=state.strict_plugins,
        rerun_finished=rerun_finished,
    )
    outcome = run_experiment(experiment.name, jobs, state.host, Tracker(uri, results_dir), cache, executor, launch)
    click.echo(f"feature cache {cache.root}: {cache.hits} reused, {cache.misses} computed in this process", err=True)
    _show_leaderboard(state, uri, experiment.name, results_dir, parent_run_id=outcome.parent_run_id)
    for job, error in outcome.failed:
        click.echo(f"FAILED {job.title}: {error}", err=True)
    click.echo(
        f"{len(outcome.finished)} jobs finished, {len(outcome.failed)} failed, "
        f"{len(outcome.skipped)} skipped (finished before)",
        err=True,
    )
    if outcome.failed:
        sys.exit(1)


def _executor(state: _State, name: str | None, workers: int | None, options: tuple[str, ...]):
    """The executor from --executor / --workers / --executor-option."""
    name = name or ("local" if workers and workers > 1 else "in-process")
    parsed = _parse_options(options)
    if workers is not None:
        parsed.setdefault("workers", workers)
    spec = state.host.registry.get("executor", name)
    if workers is not None and "workers" not in spec.options_schema():
        raise UserError(f"--workers: executor {name!r} has no workers option; options: {', '.join(spec.options_schema()) or 'none'}")
    return spec.build(parsed, f"--executor {name}")


@cli.command("eval")
@click.argument("checkpoint", metavar="RUN_ID_OR_FOLDER")
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
    checkpoint: str,
    dataset_name: str | None,
    options: tuple[str, ...],
    split: str | None,
    protocols: tuple[str, ...],
    results_dir: Path,
    tracking_uri: str | None,
    cache_dir: Path | None,
) -> None:
    """Evaluate a checkpoint on a dataset and protocol: the one of job run RUN_ID (from `itr run`),
    or a checkpoint folder (model.safetensors + job.json, e.g. from a colleague)."""
    import tempfile

    from tabulate import tabulate

    from harness.checkpoints import read_job
    from harness.experiment.jobs import job_from_record
    from harness.features import FeatureCache
    from harness.runner import DataCatalog, evaluate_checkpoint
    from harness.tracking import choose_tracking_uri, download_checkpoint

    with tempfile.TemporaryDirectory() as scratch:
        if Path(checkpoint).is_dir():
            folder, source = Path(checkpoint), f"checkpoint {checkpoint}"
        else:
            uri = choose_tracking_uri(tracking_uri, None, results_dir)
            folder, source = download_checkpoint(uri, checkpoint, Path(scratch)), f"run {checkpoint}"
        job = job_from_record(read_job(folder), source)
        target = _dataset_entry(job.dataset, dataset_name, options, split, protocols)
        catalog = DataCatalog(state.host.registry, f"itr eval {checkpoint}")
        metrics = evaluate_checkpoint(job, folder, state.host.registry, catalog, FeatureCache(cache_dir), target)
    rows = [[protocol, *(metrics[f"{protocol}/{key}"] for key in METRIC_COLUMNS)] for protocol in target.protocols]
    click.echo(f"{job.label} ({source}) on {target.title}:{target.test}")
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
        raise UserError(format_validation_error("itr eval", exc, DatasetEntry)) from None


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


sort_option = click.option("--sort", "sort_by", default="rsum", show_default=True, help="Metric to rank by (best first).")
format_option = click.option(
    "--format", "fmt", type=click.Choice(["markdown", "csv", "html"]), default="markdown", show_default=True,
    help="How to print the leaderboard (all three are written to files).",
)


@cli.command()
@click.argument("target", metavar="COMPONENT_OR_METHOD")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE", help="Component option, or a method override such as similarity_head.embed_dim=32 (repeatable).")
@click.option("--seed", default=0, show_default=True, help="Seed of every build and synthetic batch.")
@click.pass_obj
def check(state: _State, target: str, options: tuple[str, ...], seed: int) -> None:
    """Run the contract checks (interface, leakage, determinism, gradients, checkpoint) on a
    component or method (`kind:name` when a name is taken twice); exit 1 if one fails."""
    from harness.conformance import run_checks

    report = run_checks(state.host.registry, target, _parse_options(options), seed=seed)
    click.echo(report.table())
    click.echo(report.summary(), err=True)
    sys.exit(report.exit_code)


statistics_options = [
    click.option("--spread", type=click.Choice(["ci", "std"]), default="ci", show_default=True,
                 help="What ± shows: the bootstrap interval over queries, or the std over seeds."),
    click.option("--confidence", type=click.FloatRange(0.5, 0.999), default=0.95, show_default=True),
    click.option("--resamples", type=click.IntRange(min=100), default=1000, show_default=True),
]


def _with(options):
    def decorate(command):
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


experiment_arguments = [
    click.argument("experiment_file", type=click.Path(path_type=Path), required=False),
    click.option("--experiment", "experiment_name", default=None, help="Experiment name (instead of a file)."),
    results_option,
    tracking_option,
]


@cli.command()
@_with(experiment_arguments)
@sort_option
@format_option
@_with(statistics_options)
@click.pass_obj
def leaderboard(state: _State, experiment_file, experiment_name, results_dir, tracking_uri, sort_by, fmt, spread, confidence, resamples) -> None:
    """Print and write the Recall@K / rSum leaderboard of an experiment, with its plots."""
    uri, name = _experiment_store(experiment_file, experiment_name, results_dir, tracking_uri)
    _show_leaderboard(state, uri, name, results_dir, sort_by=sort_by, fmt=fmt, spread=spread, confidence=confidence, resamples=resamples)


def _experiment_store(experiment_file: Path | None, experiment_name: str | None, results_dir: Path, tracking_uri: str | None) -> tuple[str, str]:
    """(tracking URI, experiment name) from an experiment file or --experiment."""
    from harness.experiment.config import load_experiment_file
    from harness.tracking import choose_tracking_uri

    file_uri = None
    if experiment_file is not None:
        experiment = load_experiment_file(experiment_file)
        experiment_name, file_uri = experiment.name, experiment.tracking_uri
    if not experiment_name:
        raise UserError("give an experiment file or --experiment NAME")
    return choose_tracking_uri(tracking_uri, file_uri, results_dir), experiment_name


def _show_leaderboard(
    state: _State,
    tracking_uri: str,
    name: str,
    results_dir: Path,
    parent_run_id: str | None = None,
    sort_by: str = "rsum",
    fmt: str = "markdown",
    spread: str = "ci",
    confidence: float = 0.95,
    resamples: int = 1000,
) -> None:
    """Build the leaderboard from MLflow, write tables, slices and plots under results/NAME,
    attach them to the experiment's parent run (when given) and print it."""
    from harness import leaderboard as board_module
    from harness.plots import slice_bars, write_plots
    from harness.statistics.reports import leaderboard_with_statistics, slice_table
    from harness.tracking import log_artifacts, require_experiment

    experiment_id = require_experiment(tracking_uri, name)
    board = leaderboard_with_statistics(tracking_uri, experiment_id, sort_by, confidence, resamples)
    state.host.hook.on_leaderboard(frame=board)
    folder = results_dir / name
    tables = board_module.write(board, folder, spread, confidence)
    slices = slice_table(tracking_uri, experiment_id)
    tables.append(_write_text(folder / "slices_length.csv", slices.to_csv(index=False, float_format="%.2f")))
    plots = write_plots(board, folder / "plots") + slice_bars(slices, folder / "plots", "length")
    if parent_run_id is not None:
        log_artifacts(tracking_uri, parent_run_id, tables, artifact_path="leaderboard")
        log_artifacts(tracking_uri, parent_run_id, plots, artifact_path="plots")
    click.echo(board_module.render(board, fmt, spread, confidence))
    click.echo(f"written: {', '.join(str(path) for path in tables)} and {len(plots)} plots in {folder / 'plots'}", err=True)


def _write_text(path: Path, text: str) -> Path:
    """Write `text` to `path` through a temporary name, so a reader never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.tmp")
    staging.write_text(text, encoding="utf-8")
    staging.replace(path)
    return path


@cli.command()
@click.argument("run_a")
@click.argument("run_b")
@click.option("--experiment", "experiment_name", default=None, help="Read RUN_A and RUN_B as leaderboard rows (method labels) of this experiment.")
@click.option("--dataset", default=None, help="With --experiment: the dataset, when a label ran on several.")
@click.option("--protocol", default=None, help="Protocol to compare on (default: the first the runs were evaluated on).")
@results_option
@tracking_option
@_with(statistics_options[1:])
@click.pass_obj
def compare(state: _State, run_a, run_b, experiment_name, dataset, protocol, results_dir, tracking_uri, confidence, resamples) -> None:
    """Is A better than B? Paired bootstrap differences on the same test queries.

    RUN_A and RUN_B are job run ids, or with --experiment two method labels of its leaderboard
    (all their seeds; each side's metric is its mean over seeds).
    """
    import pandas as pd
    from tabulate import tabulate

    from harness.statistics.reports import compare as compare_runs
    from harness.statistics.reports import runs_of_label
    from harness.tracking import choose_tracking_uri, require_experiment, require_store

    uri = choose_tracking_uri(tracking_uri, None, results_dir)
    require_store(uri)
    if experiment_name is not None:
        experiment_id = require_experiment(uri, experiment_name)
        runs_a, _ = runs_of_label(uri, experiment_id, run_a, dataset)
        runs_b, _ = runs_of_label(uri, experiment_id, run_b, dataset)
    else:
        runs_a, runs_b = [run_a], [run_b]
    protocol = protocol or _first_protocol(uri, runs_a[0])
    differences, spread = compare_runs(uri, runs_a, runs_b, protocol, resamples, confidence)
    rows = [
        [d.metric, f"{d.a:.1f}", f"{d.b:.1f}", f"{d.difference:.1f}", f"[{d.low:.1f}, {d.high:.1f}]", f"{d.p_value:.3f}",
         *("" if pd.isna(spread.loc[d.metric, side]) else f"{spread.loc[d.metric, side]:.1f}" for side in ("A", "B"))]
        for d in differences
    ]
    headers = ["metric", "A", "B", "A − B", f"{confidence:.0%} interval", "p", "A seed std", "B seed std"]
    click.echo(f"A = {run_a} ({len(runs_a)} run(s)), B = {run_b} ({len(runs_b)} run(s)), protocol {protocol}, {resamples} paired resamples")
    click.echo(tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True))


def _first_protocol(tracking_uri: str, run_id: str) -> str:
    import mlflow

    from harness.tracking import RANKS_ARTIFACTS

    try:
        files = mlflow.MlflowClient(tracking_uri).list_artifacts(run_id, RANKS_ARTIFACTS)
    except Exception as exc:  # an unknown run id
        raise UserError(f"run {run_id} in {tracking_uri}: {str(exc).splitlines()[0]}") from None
    names = [Path(item.path).stem for item in files]
    if not names:
        raise UserError(f"run {run_id} has no per-query ranks (ranks/*.npz); it was evaluated by an older itr-harness")
    return names[0]


@cli.command()
@_with(experiment_arguments)
@click.option("--by", default="length", show_default=True, help="'length' (caption length buckets) or a per-caption tag of the dataset.")
@click.option("--lengths", default="9,12", show_default=True, help="Short/medium and medium/long thresholds in words.")
@click.pass_obj
def slices(state: _State, experiment_file, experiment_name, results_dir, tracking_uri, by, lengths) -> None:
    """t2i Recall@K by caption-query slice (length buckets or a dataset's caption tags)."""
    from tabulate import tabulate

    from harness.plots import slice_bars
    from harness.statistics.reports import slice_table
    from harness.tracking import require_experiment

    try:
        thresholds = tuple(int(part) for part in lengths.split(","))
    except ValueError:
        thresholds = ()
    if len(thresholds) != 2:
        raise UserError(f"--lengths {lengths!r}: expected two word counts, e.g. 9,12")
    uri, name = _experiment_store(experiment_file, experiment_name, results_dir, tracking_uri)
    table = slice_table(uri, require_experiment(uri, name), by, thresholds)
    folder = results_dir / name
    csv_path = _write_text(folder / f"slices_{by}.csv", table.to_csv(index=False, float_format="%.2f"))
    plots = slice_bars(table, folder / "plots", by)
    click.echo(tabulate(table, headers="keys", tablefmt="github", floatfmt=".1f", showindex=False))
    click.echo(f"written: {csv_path} and {len(plots)} plots in {folder / 'plots'}", err=True)


UNWRITABLE = {
    errno.ENOSPC: "free space or choose another",
    errno.EDQUOT: "free space or choose another",
    errno.EACCES: "choose a writable",
    errno.EPERM: "choose a writable",
    errno.EROFS: "choose a writable",
    errno.ENOTDIR: "choose a writable",
}
"""Write failures the user fixes outside the harness (disk full, quota, permissions, a file in
the way), with what to do about them."""


def main(argv: list[str] | None = None) -> None:
    """Console entry point: runs the CLI; bad input (UserError) and a file that cannot be written
    (disk full, permissions) become one line and exit code 2."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per small file is noise
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="itr", standalone_mode=False)
    except UserError as exc:
        _stop(str(exc), debug)
    except OSError as exc:
        if exc.errno not in UNWRITABLE:
            raise
        _stop(
            f"{exc.filename or 'a results file'}: cannot write ({exc.strerror}); {UNWRITABLE[exc.errno]} "
            "--results-dir / --cache-dir (finished runs are kept in MLflow: `itr leaderboard` rewrites the tables)",
            debug,
        )
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)


def _stop(message: str, debug: bool) -> None:
    """Report the error being handled as one line (after its traceback with --debug); exit 2."""
    if debug:
        traceback.print_exc()
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_USAGE)


if __name__ == "__main__":
    main()
