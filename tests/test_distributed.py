"""Several devices and machines: MirroredStrategy on two logical CPU devices (in a fresh process), two worker processes
on localhost with MultiWorkerMirroredStrategy, and the clear errors for a bad TF_CONFIG or strategy."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sr_lib import cli
from sr_lib.training import distribute
from sr_lib.training import phases as training
from sr_lib.config import ConfigError

ROOT = Path(__file__).resolve().parent.parent
LIMIT_S = 600  # Hard limit for each multi-process launch (all its processes), far above its usual tens of seconds.


def test_two_logical_devices_suite():
    """tests/two_devices_suite.py: both phases and three adversarial variants on 2 replicas, one 2-replica step equal to
    one single-device step, resume, the global batch split, BatchNorm. Logical devices must be configured before
    TensorFlow starts, hence a fresh process."""
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2")
    command = [sys.executable, "-m", "pytest", "tests/two_devices_suite.py", "-q", "-p", "no:cacheprovider", "-p",
               "no:xdist", "-o", "addopts="]
    process = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=LIMIT_S)
    assert process.returncode == 0, process.stdout[-6000:] + process.stderr[-3000:]
    assert re.search(r"\b\d+ passed\b", process.stdout), process.stdout[-2000:]


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for handle in sockets:
            handle.bind(("localhost", 0))
        return [handle.getsockname()[1] for handle in sockets]
    finally:
        for handle in sockets:
            handle.close()


class _Job:
    """Two `python -m sr_lib train` (or ``command``) workers on localhost, each with its TF_CONFIG; always killed on
    exit."""

    def __init__(self, tmp_path, name, outs, *settings, command=("train", "--phase", "pretrain")):
        ports = _free_ports(2)
        self.logs = [tmp_path / f"{name}_worker{index}.log" for index in range(2)]
        self.processes = []
        for index in range(2):
            tf_config = {"cluster": {"worker": [f"localhost:{port}" for port in ports]},
                         "task": {"type": "worker", "index": index}}
            env = dict(os.environ, TF_CONFIG=json.dumps(tf_config), CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2")
            argv = [sys.executable, "-m", "sr_lib", *command, "--preset", "ci", "--out", str(outs[index]), "--set",
                    "train.strategy=multi_worker"]
            argv += [item for setting in settings for item in ("--set", setting)]
            with open(self.logs[index], "w") as log:
                # A session of its own: the process can be killed by its id whatever it is doing.
                self.processes.append(subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                                       start_new_session=True))
        self.deadline = time.monotonic() + LIMIT_S

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def output(self, index):
        return self.logs[index].read_text()

    def wait(self, index):
        try:
            return self.processes[index].wait(timeout=max(1, self.deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pytest.fail(f"worker {index} still running after {LIMIT_S} s:\n{self.output(index)[-3000:]}")

    def finish(self):
        codes = [self.wait(index) for index in range(2)]
        assert codes == [0, 0], "\n\n".join(self.output(index)[-3000:] for index in range(2))


def _best_line(text):
    return re.search(r"phase 1 \(SRResNet, MSE\): best PSNR-Y .*", text).group(0)


def test_two_worker_processes_train_only_the_chief_writes_and_a_second_launch_resumes(tmp_path):
    run = tmp_path / "run"
    with _Job(tmp_path, "first", [run, run], "train.pretrain_steps=4") as job:
        job.finish()
        outputs = [job.output(0), job.output(1)]
    phase = run / "pretrain"
    # Only worker 0 (the chief, as TF_CONFIG names no "chief" task) wrote: one log row per validation, one TensorBoard
    # event file, one image grid. Two writers would have doubled each.
    assert [row["step"] for row in training.read_log(phase)] == [2, 4]
    assert len(list((phase / "tensorboard" / "train").glob("events.out.tfevents*"))) == 1
    assert [p.name for p in (phase / "images").iterdir()] == ["step_000000004.png"]
    assert sorted(p.name for p in (phase / "checkpoints").iterdir()) == ["ckpt-000000002", "ckpt-000000004", "latest"]
    assert (phase / "generator_final.keras").is_file()
    # The other worker trained in step with the chief and reports the chief's best step, read from its checkpoint.
    assert _best_line(outputs[1]) == _best_line(outputs[0])

    # The job, interrupted after step 4 of 6 (same run directory, the 6-step config), is launched again: every worker
    # resumes from the chief's latest checkpoint.
    config = json.loads((phase / "config.json").read_text())
    config["train"]["pretrain_steps"] = 6
    (phase / "config.json").write_text(json.dumps(config))
    with _Job(tmp_path, "second", [run, run], "train.pretrain_steps=6") as job:
        job.finish()
    assert [row["step"] for row in training.read_log(phase)] == [2, 4, 6]
    assert (phase / "checkpoints" / "latest").read_text().strip() == "ckpt-000000006"

    # A worker that cannot see the chief's run directory would start from step 0 beside a chief at step 6: refused.
    config["train"]["pretrain_steps"] = 8
    (phase / "config.json").write_text(json.dumps(config))
    with _Job(tmp_path, "third", [run, tmp_path / "elsewhere"], "train.pretrain_steps=8") as job:
        codes = [job.wait(0), job.wait(1)]
        outputs = [job.output(0), job.output(1)]
    assert codes == [2, 2]
    assert all("disagree about the step to resume from" in text and "gs://" in text for text in outputs), outputs


def test_two_worker_processes_compare_and_only_the_chief_writes_the_report(tmp_path):
    """`compare` under multi_worker: every worker trains phase 1 and both variants, the chief alone writes (runs,
    config.json, report), and the other worker waits for the report and prints the chief's table instead of hanging
    or writing its own. (Its writing nothing is checked in-process in tests/test_experiment.py; resuming a
    comparison is tested there on ram://, and multi-worker resume above.)"""
    out = tmp_path / "cmp"
    command = ("compare", "--variants", "srresnet_mse,perpix_modified")
    with _Job(tmp_path, "compare", [out, out], "train.pretrain_steps=2", "train.gan_steps=2",
              command=command) as job:
        job.finish()
        outputs = [job.output(0), job.output(1)]
    for run in ("pretrain", "variants/srresnet_mse", "variants/perpix_modified"):
        assert [row["step"] for row in training.read_log(out / run)] == [2], run  # One writer: one row.
        assert len(list((out / run / "tensorboard" / "train").glob("events.out.tfevents*"))) == 1, run
    report = json.loads((out / "report" / "results.json").read_text())
    assert [row["method"] for row in report["rows"]][:2] == ["bicubic", "SRResNet (MSE)"]
    assert (out / "config.json").is_file() and (out / "report" / "comparison_grid.png").is_file()
    table = (out / "report" / "results.md").read_text()
    assert all(table in text and f"report: {out / 'report'}" in text for text in outputs), outputs[1][-3000:]


def test_a_dead_worker_stops_the_job_with_a_clear_message(tmp_path):
    run = tmp_path / "run"
    with _Job(tmp_path, "job", [run, run], "train.pretrain_steps=4000") as job:
        latest = run / "pretrain" / "checkpoints" / "latest"
        while not latest.is_file() and job.processes[0].poll() is None and time.monotonic() < job.deadline:
            time.sleep(0.2)
        assert latest.is_file(), job.output(0)[-3000:]
        os.killpg(job.processes[1].pid, signal.SIGKILL)
        assert job.wait(0) == 2
        text = job.output(0)
    message = next(line for line in text.splitlines() if line.startswith("error:"))
    assert "a worker of the multi-worker job failed or became unreachable" in message
    assert "ckpt-" in message and "start the same command again on every machine to resume" in message


@pytest.mark.parametrize("value, expected", [
    (None, "needs the TF_CONFIG environment variable"),
    ("{not json", "TF_CONFIG is not valid JSON"),
    ('{"task": {"type": "worker", "index": 0}}', 'no "cluster" with a "worker" list'),
    ('{"cluster": {"worker": ["localhost"]}, "task": {"type": "worker", "index": 0}}', '"host:port" strings'),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "ps", "index": 0}}', 'must name a job'),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}', "task index 2"),
])
def test_bad_tf_config_is_a_clear_error(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", value)
    with pytest.raises(ConfigError, match=re.escape(expected)):
        distribute.read_tf_config()


def test_command_line_names_a_bad_tf_config_or_strategy(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("TF_CONFIG", "{not json")
    # The strategy is made before anything else, so the error comes before any data is read or directory written.
    argv = ["train", "--preset", "ci", "--phase", "pretrain", "--out", str(tmp_path / "run")]
    assert cli.main(argv + ["--set", "train.strategy=multi_worker"]) == 2
    assert capsys.readouterr().err.startswith("error: TF_CONFIG is not valid JSON")
    assert not (tmp_path / "run").exists()
    assert cli.main(argv + ["--set", "train.strategy=tpu"]) == 2
    assert capsys.readouterr().err.startswith("error: config key train.strategy: must be one of default, mirrored, "
                                              "multi_worker, got 'tpu'")
