"""Observer hooks (before_job, after_job, on_leaderboard) see a real run (in this process:
`itr_in_process`, seconds faster than a fresh interpreter)."""

from __future__ import annotations

import json

from tests.helpers import itr_in_process

OBSERVER = '''
import json, os
from harness.hookspecs import hookimpl

LOG = os.environ["ITR_TEST_OBSERVER_LOG"]

def _write(event, **data):
    with open(LOG, "a") as handle:
        handle.write(json.dumps({"event": event, **data}) + "\\n")

@hookimpl
def before_job(job):
    _write("before_job", label=job.label, config_hash=job.config_hash)

@hookimpl
def after_job(job, metrics):
    _write("after_job", label=job.label, rsum=metrics["full/rsum"])

@hookimpl
def on_leaderboard(frame):
    _write("on_leaderboard", methods=sorted(frame["method"]))
'''

EXPERIMENT = """
name = "observed"
[[datasets]]
name = "coco-demo"
[methods.class-bridge]
"""


def test_observers_see_each_job_and_the_leaderboard(tmp_path, monkeypatch):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "observer.py").write_text(OBSERVER)
    (tmp_path / "exp.toml").write_text(EXPERIMENT)
    log = tmp_path / "events.jsonl"
    monkeypatch.setenv("ITR_TEST_OBSERVER_LOG", str(log))
    out = itr_in_process(
        "--plugins-dir", str(plugins), "run", str(tmp_path / "exp.toml"), "--results-dir", str(tmp_path / "results")
    )
    assert out.code == 0, out.stderr[-2000:]
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["event"] for e in events] == ["before_job", "after_job", "on_leaderboard"]
    assert events[1]["rsum"] > 0
    assert events[2]["methods"] == ["class-bridge"]
