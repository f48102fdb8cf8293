"""``costwarden demo`` end to end (stand-in, real operator, accelerated clock) and ``top --once``."""

from __future__ import annotations

import argparse
import io
import struct
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from rich.console import Console

from costwarden import top
from costwarden.cli import build_parser
from costwarden.crd import load_crd
from costwarden.demo import scenario
from costwarden.demo.chart import ChartStyle, History, Mark, render_chart
from costwarden.demo.clock import AcceleratedClock
from costwarden.demo.cloud import SPOT, CloudCall, SimulatedCloud, skypilot_tags
from costwarden.demo.runner import DemoOptions, run_demo
from costwarden.demo.shapes import BUDGET_API
from costwarden.demo.slurm import MIN_JOB_AGE, SimulatedSlurm, SlurmCall
from costwarden.demo.view import action_label
from costwarden.engine.slurm import ENDED, PENDING, SUSPENDED, SlurmJob
from costwarden.engine.slurm import RUNNING as JOB_RUNNING
from costwarden.engine.vms import RUNNING, STOPPED, TERMINATED
from costwarden.records import format_time
from costwarden.sim.testing import ThreadedSimCluster

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BUDGETS = {
    "research/lr-sweep",
    "research/finetune-llama",
    "serving/llm-serving",
    "research/research-monthly",
    "training/llama-pretrain",
    "slurm/research-hpc",
}
PRETRAIN = "training/llama-pretrain"
HPC_BUDGET = "slurm/research-hpc"


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, "not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_demo_runs_the_scenario_with_the_real_operator_and_charts_it(tmp_path):
    out = io.StringIO()
    console = Console(file=out, width=200)
    # 8 wall seconds for the simulated span the scenario is written for.
    speed = scenario.DEMO_HOURS * 3600 / 8
    result = run_demo(DemoOptions(speed=speed, duration=8, out=tmp_path, live=False), console)

    assert result.chart == tmp_path / "spend.png"
    width, height = png_size(result.chart)
    assert width >= 1200 and height >= 700
    assert result.chart.stat().st_size > 40_000  # six panels with curves, not an empty figure

    summary = {f"{row.namespace}/{row.name}": row for row in result.budgets}
    assert set(summary) == BUDGETS
    assert all(row.spend > 0 for row in summary.values()), summary
    assert summary["research/lr-sweep"].spend > Decimal(100)  # p5 H100s for hours

    # The operator's spend annotations reached the pods of every workload.
    assert {
        "research/lr-sweep-trial-0-2ea4-head",
        "research/lr-sweep-trial-1-7c1e-head",
        "research/finetune-llama-3b1d-head",
        "serving/llm-serving-6d9f7c8b5-x2k8q",
    } <= result.annotated_pods
    # The spot failover happened: the spot pod went away and its successor was priced.
    assert "research/finetune-llama-3b1d-head" in result.gone_pods
    assert any("spot g4dn.xlarge reclaimed" in line for line in result.log)

    # The failover onto cloud VMs: the spot nodes' pods went away, the cluster came back as two
    # on-demand p5.48xlarge VMs, the budget followed it and its Kill terminated exactly those.
    assert {"training/llama-pretrain-5f2a-head", "training/llama-pretrain-5f2a-worker1"} <= set(
        result.gone_pods
    )
    by_cluster = {(vm.cluster, vm.is_head): vm for vm in result.vms}
    assert set(by_cluster) == {
        ("eval-harness-9a0c", True),
        ("llama-pretrain-5f2a", True),
        ("llama-pretrain-5f2a", False),
    }
    head, worker = by_cluster["llama-pretrain-5f2a", True], by_cluster["llama-pretrain-5f2a", False]
    decoy = by_cluster["eval-harness-9a0c", True]
    assert (head.instance_type, head.capacity_type) == ("p5.48xlarge", "on-demand")
    assert head.state == worker.state == TERMINATED
    assert decoy.state == RUNNING  # another cluster's VM: no budget names it, nothing touched it
    assert result.cloud_calls == [
        CloudCall("terminate", worker.vm_id, True, "terminated"),  # workers first, as sky down
        CloudCall("terminate", head.vm_id, True, "terminated"),
    ]
    pretrain = summary[PRETRAIN]
    assert pretrain.vms == 0  # terminated VMs are no longer live...
    assert pretrain.vm_spend is not None and pretrain.vm_spend > Decimal(150)  # ...their spend stays
    assert pretrain.spend - pretrain.vm_spend > Decimal(100)  # 3 h of the two spot nodes' pods
    assert pretrain.spend >= Decimal(350)
    assert pretrain.pods == 0
    actions = {(a.namespace + "/" + a.budget, a.id.split("/")[0], a.action): a for a in result.actions}
    kill = actions[PRETRAIN, "threshold", "Kill"]
    assert kill.result == "Done"
    assert kill.targets == (f"VM/aws:{worker.vm_id}", f"VM/aws:{head.vm_id}")
    assert actions[PRETRAIN, "anomaly", "Notify"].result == "Done"  # the burn rate jumped 2.5 times
    assert any(f"☁ {PRETRAIN}: 2 live VMs" in line for line in result.log)  # it followed them
    assert any(f"✗ VM {head.vm_id}" in line and "terminated" in line for line in result.log)
    for other in ("lr-sweep", "finetune-llama", "research-monthly"):  # no cloud VM reached them
        assert not summary[f"research/{other}"].vm_spend

    # The Slurm scene: the research team's budget (spec.slurm: cluster hpc, account nlp-research)
    # covered its two jobs; at the limit its Kill sent TERM to both, waited the grace period and
    # cancelled them by id, while another account's job on the same cluster kept running.
    jobs = {job.name: job for job in result.slurm_jobs}
    assert set(jobs) == {"pretrain-7b", "eval-sweep", "md-sim"}
    pretrain_7b, sweep, md_sim = jobs["pretrain-7b"], jobs["eval-sweep"], jobs["md-sim"]
    assert (pretrain_7b.state, pretrain_7b.slurm_state) == (ENDED, "CANCELLED")
    assert (sweep.state, sweep.slurm_state) == (ENDED, "CANCELLED")
    assert (md_sim.state, md_sim.account) == (JOB_RUNNING, "chem-sim")  # the decoy: untouched
    assert sweep.started is not None and sweep.started - scenario.DEMO_START >= scenario.HPC_EVAL_STARTS
    covered = {pretrain_7b.job_id, sweep.job_id}
    signals, cancels = result.slurm_calls[:2], result.slurm_calls[2:]
    assert [(c.verb, c.signal, c.ok, c.message) for c in signals] == [
        ("signal", "TERM", True, "signalled TERM")
    ] * 2
    assert [(c.verb, c.ok, c.message) for c in cancels] == [("cancel", True, "cancelled")] * 2
    assert {c.job_id for c in signals} == {c.job_id for c in cancels} == covered  # by id, only these
    term_at, cancel_at = max(c.at for c in signals if c.at), min(c.at for c in cancels if c.at)
    assert cancel_at - term_at >= timedelta(seconds=0.9 * speed)  # the budget's 1 s grace, in demo time
    assert pretrain_7b.ended == cancel_at
    hpc = summary[HPC_BUDGET]
    assert hpc.slurm_jobs == 0  # both cancelled: none live...
    assert hpc.slurm_spend is not None and hpc.slurm_spend >= Decimal(120)  # ...their spend stays
    assert hpc.spend == hpc.slurm_spend and hpc.pods == 0 and hpc.vm_spend is None
    assert actions[HPC_BUDGET, "threshold", "Notify"].result == "Done"
    hpc_kill = actions[HPC_BUDGET, "threshold", "Kill"]
    assert hpc_kill.result == "Done"
    assert set(hpc_kill.targets) == {f"SlurmJob/hpc:{job_id}" for job_id in covered}
    assert not any(md_sim.job_id in target for a in result.actions for target in a.targets)
    assert any(f"⚙ {HPC_BUDGET}: 2 live Slurm jobs" in line for line in result.log)
    assert any(f"✗ Slurm job hpc:{pretrain_7b.job_id}" in line and "CANCELLED" in line for line in result.log)
    assert summary[PRETRAIN].slurm_spend == 0  # names a SkyPilot cluster: could cover a job, covers none
    assert summary["research/lr-sweep"].slurm_spend is None  # no spec.slurm, no cluster: covers none

    text = out.getvalue()
    assert "Summary" in text
    assert f"Chart: {result.chart.resolve()}" in text
    for key in BUDGETS:
        assert key in text
    assert "VM SPEND" in text and f"{pretrain.vm_spend:,.2f}" in text
    assert "Cloud VMs (simulated aws:us-east-1)" in text and decoy.vm_id in text
    assert "SLURM SPEND" in text and f"{hpc.slurm_spend:,.2f}" in text
    assert "Slurm jobs (simulated cluster hpc)" in text and "md-sim" in text


def test_demo_and_top_are_commands():
    parser = build_parser()
    args = parser.parse_args(["demo", "--speed", "1200", "--duration", "5", "--no-live", "--out", "x"])
    assert (args.command, args.speed, args.duration, args.no_live, args.out) == (
        "demo",
        1200,
        5,
        True,
        Path("x"),
    )
    args = parser.parse_args(["top", "--by", "user", "-n", "research", "--once"])
    assert (args.command, args.by, args.namespace, args.once) == ("top", "user", "research", True)
    with pytest.raises(SystemExit):
        parser.parse_args(["demo", "--speed", "0"])


def test_accelerated_clock_runs_speed_times_faster():
    wall = [100.0]
    clock = AcceleratedClock(scenario.DEMO_START, 600, monotonic=lambda: wall[0])
    assert clock() == scenario.DEMO_START
    wall[0] += 6
    assert clock() == scenario.DEMO_START + timedelta(hours=1)
    assert clock.hours() == 1.0
    assert clock.wall_seconds(timedelta(hours=2)) == 12.0
    with pytest.raises(ValueError):
        AcceleratedClock(scenario.DEMO_START, 0)


def test_action_labels():
    assert action_label("threshold/100/2026-11-01T00:00:00Z", "Kill", "Done") == "100% Kill · Done"
    assert action_label("anomaly/idleGpu/uid-1", "Kill", "Pending") == "idle GPU Kill · Pending"
    assert action_label("anomaly/burnRate/lifetime", "Notify", "DryRun") == "burn rate Notify · DryRun"
    assert action_label("something/else", "Scale", "") == "Scale"


def test_chart_of_a_hand_made_history_is_a_png(tmp_path):
    history = History()
    history.series("ns/a", Decimal(100), [(Decimal(50), "Notify"), (Decimal(100), "Kill")])
    for hour in range(8):
        history.sample("ns/a", float(hour), Decimal(20 * hour))
    history.sample("ns/a", 7.0, Decimal(141))  # same time: replaces, never goes back
    history.sample("ns/a", 6.5, Decimal(1))
    assert history.budgets["ns/a"].samples[-1] == (7.0, Decimal(141))
    assert history.mark("ns/a", "threshold/100/x", Mark(5.0, "100% Kill · Pending", "Kill"))
    assert not history.mark("ns/a", "threshold/100/x", Mark(5.0, "100% Kill · Done", "Kill"))
    assert history.budgets["ns/a"].marks["threshold/100/x"].label == "100% Kill · Done"
    path = render_chart(history, tmp_path / "c.png", ChartStyle("test"))
    assert png_size(path)[0] > 500


def test_chart_splits_the_spend_of_a_budget_whose_vms_spent_into_pods_and_vms(tmp_path):
    history = History()
    history.series("ns/vm", Decimal(350), [(Decimal(100), "Kill")])
    for hour, spend, on_vms in ((1.0, 44, 0), (3.0, 132, 0), (4.0, 210, 78), (5.0, 320, 188)):
        history.sample("ns/vm", hour, Decimal(spend), Decimal(on_vms))
    history.sample("ns/vm", 5.0, Decimal(321), Decimal(189))  # same time: both replaced
    series = history.budgets["ns/vm"]
    assert series.samples[-1] == (5.0, Decimal(321))
    assert series.vm_samples == [
        (1.0, Decimal(0)),
        (3.0, Decimal(0)),
        (4.0, Decimal(78)),
        (5.0, Decimal(189)),
    ]
    history.mark("ns/vm", "threshold/100/x", Mark(4.5, "100% Kill · Done", "Kill"))
    split = render_chart(history, tmp_path / "split.png", ChartStyle("test"))
    history.budgets["ns/vm"].vm_samples.clear()
    plain = render_chart(history, tmp_path / "plain.png", ChartStyle("test"))
    assert png_size(split) == png_size(plain)
    assert split.read_bytes() != plain.read_bytes()  # the two thinner curves and their legend


def test_simulated_cloud_lists_skypilot_vms_and_acts_only_on_the_claimed_clusters_own():
    cloud = SimulatedCloud("us-east-1")
    at = scenario.DEMO_START
    head = cloud.launch("p5.48xlarge", skypilot_tags("ours-5f2a", head=True, user="carol"), at)
    worker = cloud.launch("p5.48xlarge", skypilot_tags("ours-5f2a", head=False, user="carol"), at)
    spot = cloud.launch(
        "g5.xlarge", skypilot_tags("ours-5f2a", head=False, user="carol"), at, capacity_type=SPOT
    )
    decoy = cloud.launch("g5.12xlarge", skypilot_tags("other-9a0c", head=True, user="dave"), at)
    notebook = cloud.launch("p4d.24xlarge", [("Name", "notebook")], at)

    found = cloud.discover()
    assert found.complete and [vm.vm_id for vm in found.vms] == [
        head.vm_id,
        worker.vm_id,
        spot.vm_id,
        decoy.vm_id,
    ]
    assert len({vm.vm_id for vm in cloud.vms()}) == 5  # unique ids; the untagged one is there, unlisted
    assert (head.is_head, worker.is_head, head.cluster, head.launched) == (True, False, "ours-5f2a", at)
    assert head.provider_id == f"aws:///us-east-1a/{head.vm_id}"

    # A record claiming our cluster for a VM that now carries another's tag, an untagged record,
    # a record of another scope: each left alone, with the reason.
    claimed_decoy = replace(decoy, tags=head.tags)
    other_scope = replace(worker, scope="aws:us-west-2")
    answers = cloud.terminate([claimed_decoy, notebook, other_scope])
    assert [(a.ok, a.message) for a in answers] == [
        (False, "tagged for cluster other-9a0c, not ours-5f2a: left alone"),
        (False, "no SkyPilot cluster tag: left alone"),
        (False, "aws:us-west-2, not aws:us-east-1: left alone"),
    ]
    assert {vm.vm_id: vm.state for vm in cloud.vms()} == dict.fromkeys(
        (head.vm_id, worker.vm_id, spot.vm_id, decoy.vm_id, notebook.vm_id), RUNNING
    )

    stopped = cloud.stop([worker, spot])
    assert [(a.ok, a.message) for a in stopped] == [
        (True, "stopped"),
        (False, "spot: EC2 does not stop one-time spot instances: left running"),
    ]
    assert [(a.ok, a.message) for a in cloud.terminate([worker, head, head])] == [
        (True, "terminated"),
        (True, "terminated"),
        (True, "already terminated"),
    ]
    states = {vm.vm_id: vm.state for vm in cloud.vms()}
    assert (states[worker.vm_id], states[head.vm_id], states[spot.vm_id]) == (TERMINATED, TERMINATED, RUNNING)
    assert states[decoy.vm_id] == states[notebook.vm_id] == RUNNING
    described = cloud.describe([head, spot])
    assert described.complete and [vm.state for vm in described.vms] == [TERMINATED, RUNNING]
    assert not cloud.describe([other_scope]).complete
    assert [c.verb for c in cloud.calls()] == ["terminate"] * 3 + ["stop"] * 2 + ["terminate"] * 3
    assert STOPPED not in states.values()  # the stopped worker was terminated after


def test_simulated_slurm_lists_like_squeue_and_acts_only_by_id_on_its_own_jobs():
    now = [scenario.DEMO_START]
    slurm = SimulatedSlurm("hpc", lambda: now[0])
    alloc = {"partition": "gpu", "cpus": 32, "memory_gib": 256, "gpu_type": "h100", "at": now[0]}
    ours = slurm.submit("train", user="alice", account="ml", gpus=8, nodes=("gpu-01",), **alloc)
    queued = slurm.submit("train", user="alice", account="ml", gpus=4, **alloc)
    theirs = slurm.submit("train", user="dave", account="chem", gpus=8, nodes=("gpu-02",), **alloc)
    assert slurm.cluster == "hpc" and len({ours.job_id, queued.job_id, theirs.job_id}) == 3
    assert (ours.state, ours.gpus, ours.cpus, ours.memory_gib, ours.started) == (
        JOB_RUNNING,
        8,
        32,
        Decimal(256),
        now[0],
    )
    assert (queued.state, queued.gpus, queued.cpus, queued.started) == (
        PENDING,
        0,
        0,
        None,
    )  # nothing allocated

    # Another cluster's record and an id this cluster never had: left alone, never matched by name.
    elsewhere = SlurmJob("other", ours.job_id, "train", "alice", "ml", "gpu", JOB_RUNNING, "RUNNING")
    unknown = SlurmJob("hpc", "999", "train", "alice", "ml", "gpu", JOB_RUNNING, "RUNNING")
    assert [(a.ok, a.message) for a in slurm.cancel([elsewhere, unknown])] == [
        (False, "a job of cluster other, not hpc: left alone"),
        (False, "Invalid job id specified"),
    ]
    assert [(a.ok, a.message) for a in slurm.signal([ours, queued], "TERM")] == [
        (True, "signalled TERM"),
        (False, "job is pending execution: not signalled"),
    ]
    assert {job.job_id: job.state for job in slurm.jobs().jobs} == {
        ours.job_id: JOB_RUNNING,  # TERM: it checkpoints and keeps running until cancelled
        queued.job_id: PENDING,
        theirs.job_id: JOB_RUNNING,
    }
    assert [(a.ok, a.message) for a in slurm.suspend([queued])] == [(True, "held")]
    assert slurm.start(queued.job_id, ("gpu-03",), now[0]).state == PENDING  # held: not started

    now[0] += timedelta(minutes=10)
    assert [(a.ok, a.message) for a in slurm.cancel([ours, ours])] == [
        (True, "cancelled"),
        (True, "already ended (CANCELLED)"),
    ]
    listed = {job.job_id: job for job in slurm.jobs().jobs}
    assert (listed[ours.job_id].state, listed[ours.job_id].ended) == (ENDED, now[0])
    assert listed[theirs.job_id].state == JOB_RUNNING  # same name, same user's cluster: untouched
    now[0] += MIN_JOB_AGE
    assert ours.job_id not in {job.job_id for job in slurm.jobs().jobs}  # left squeue...
    (found,) = slurm.history([ours.job_id, "999"]).jobs  # ...accounting still has it
    assert (found.job_id, found.slurm_state, found.ended) == (ours.job_id, "CANCELLED", now[0] - MIN_JOB_AGE)
    assert slurm.suspend([theirs])[0].message == "suspended"
    assert {job.job_id: job.state for job in slurm.all_jobs()}[theirs.job_id] == SUSPENDED
    assert [c.verb for c in slurm.calls()] == [
        "cancel",
        "cancel",
        "signal",
        "signal",
        "suspend",
        "cancel",
        "cancel",
        "suspend",
    ]
    assert slurm.calls()[2] == SlurmCall("signal", ours.job_id, True, "signalled TERM", "TERM")


def test_chart_splits_pod_vm_and_slurm_spend_and_labels_a_slurm_only_budget(tmp_path):
    history = History()
    history.series("ns/mixed", Decimal(300), [(Decimal(100), "Kill")])
    history.series("ns/jobs", Decimal(120), [(Decimal(100), "Kill")])
    for hour in (1.0, 2.0, 3.0):
        history.sample("ns/mixed", hour, Decimal(60 * hour), Decimal(0), Decimal(20 * hour))
        history.sample("ns/jobs", hour, Decimal(30 * hour), None, Decimal(30 * hour))
    history.sample("ns/jobs", 3.0, Decimal(91), None, Decimal(91))  # same time: both replaced
    assert history.budgets["ns/mixed"].slurm_samples[-1] == (3.0, Decimal(60))
    assert history.budgets["ns/jobs"].slurm_samples == [
        (1.0, Decimal(30)),
        (2.0, Decimal(60)),
        (3.0, Decimal(91)),
    ]
    assert history.budgets["ns/jobs"].vm_samples == []
    split = render_chart(history, tmp_path / "split.png", ChartStyle("test"))
    for series in history.budgets.values():
        series.slurm_samples.clear()
    plain = render_chart(history, tmp_path / "plain.png", ChartStyle("test"))
    assert png_size(split) == png_size(plain)
    assert split.read_bytes() != plain.read_bytes()  # the split curves, the "(Slurm jobs)" label


P5_PRICE = {
    "name": scenario.P5_NODE,
    "hourlyRate": 38.594,
    "source": "catalog: aws p5.48xlarge us-east-1 on-demand (karpenter-provider-aws, 2026-07-20) x 0.7012 "
    "(billing: 312 reconciled aws p5.48xlarge on-demand node-hours through 2026-11-26T10:00:00Z)",
}
A3_PRICE = {
    "name": scenario.A3_NODE,
    "hourlyRate": 88.4904,
    "source": "live: gcp cloud billing catalog us-central1 (fetched 2026-11-26T09:00Z)",
}


def seed_top_cluster(sim: ThreadedSimCluster) -> None:
    """The demo's scenario, with figures written by hand where the operator would write them."""
    sim.create(load_crd())
    scenario.seed(sim, scenario.DEMO_START)
    at = format_time(scenario.DEMO_START + timedelta(hours=2))
    figures = {
        ("research", "lr-sweep-trial-0-2ea4-head"): ("27.28", "13.64", "lr-sweep,research-monthly"),
        ("research", "lr-sweep-trial-1-7c1e-head"): ("27.30", "13.64", "lr-sweep,research-monthly"),
        ("research", "finetune-llama-3b1d-head"): ("0.40", "0.20", "finetune-llama,research-monthly"),
        ("serving", "llm-serving-6d9f7c8b5-x2k8q"): ("70.20", "35.10", "llm-serving"),
    }
    for (namespace, name), (spend, rate, budgets) in figures.items():
        notes = {
            "costwarden.dev/spend": spend,
            "costwarden.dev/rate": rate,
            "costwarden.dev/spend-at": at,
            "costwarden.dev/budgets": budgets,
        }
        sim.patch("v1", "pods", name, {"metadata": {"annotations": notes}}, namespace=namespace)
    status = {"spend": 54.58, "hourlyRate": 27.28, "percentUsed": 21.8, "phase": "Ok", "pods": 2}
    status["nodePrices"] = [P5_PRICE, A3_PRICE]
    sim.patch(
        BUDGET_API,
        "costbudgets",
        "lr-sweep",
        {"status": status},
        namespace="research",
        subresource="status",
    )
    status = {"spend": 130.5, "hourlyRate": 35.1, "percentUsed": 81.6, "phase": "Warning", "pods": 1}
    status["nodePrices"] = [P5_PRICE]  # the node both budgets' pods run on: one row in top
    sim.patch(
        BUDGET_API,
        "costbudgets",
        "llm-serving",
        {"status": status},
        namespace="serving",
        subresource="status",
    )


def run_top(kubeconfig: Path, *argv: str) -> str:
    args = build_parser().parse_args(["top", "--kubeconfig", str(kubeconfig), "--once", *argv])
    assert isinstance(args, argparse.Namespace)
    out = io.StringIO()
    assert top.run(args, Console(file=out, width=220)) == 0
    return out.getvalue()


def row_of(text: str, first_cell: str) -> list[str]:
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("│┃ ").split("│")]
        if cells and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row starting with {first_cell!r} in:\n{text}")


def test_top_once_shows_budgets_and_groups_from_the_cluster():
    with ThreadedSimCluster() as sim:
        seed_top_cluster(sim)

        text = run_top(sim.kubeconfig)
        assert row_of(text, "serving")[:9] == [
            "serving",
            "llm-serving",
            "130.50",
            "160.00",
            "82%",
            "35.10/h",
            "-",  # GPU%: no telemetry in this cluster
            "0.00",  # WASTED
            "Warning",
        ]
        assert row_of(text, "research")[1:3] == ["lr-sweep", "54.58"]  # the most used research budget
        # Grouped by SkyPilot cluster: each annotated trial is a cluster; the inference pod is in none.
        trial = [
            "lr-sweep-trial-1",
            "research",
            "1",
            "2",
            "-",
            "27.30",
            "13.64/h",
            "lr-sweep,research-monthly",
        ]
        assert row_of(text, "lr-sweep-trial-1") == trial
        assert row_of(text, "lr-sweep-trial-0")[5] == "27.28"
        assert "lr-sweep-trial-2" not in text  # not annotated: not priced yet
        assert row_of(text, "<none>")[2:7] == ["1", "8", "-", "70.20", "35.10/h"]
        assert row_of(text, "finetune-llama")[5] == "0.40"
        # the budgets' status.nodePrices: each node once, the costliest first, with its source
        nodes = text.split("Node prices")[1]
        assert nodes.count(scenario.P5_NODE) == 1
        assert row_of(nodes, scenario.A3_NODE)[1:5] == ["88.4904/h", "live", "-", "research/lr-sweep"]
        p5 = row_of(nodes, scenario.P5_NODE)
        assert p5[1:5] == ["38.594/h", "catalog", "x0.7012", "research/lr-sweep,serving/llm-serving"]
        assert p5[5].startswith("catalog: aws p5.48xlarge us-east-1 on-demand")
        assert nodes.index(scenario.A3_NODE) < nodes.index(scenario.P5_NODE)

        by_user = run_top(sim.kubeconfig, "--by", "user")
        assert row_of(by_user, "alice")[2:6] == ["2", "4", "-", "54.58"]
        assert row_of(by_user, "bob")[5] == "0.40"

        only_serving = run_top(sim.kubeconfig, "-n", "serving", "--by", "namespace")
        assert row_of(only_serving, "serving")[1:4] == ["llm-serving", "130.50", "160.00"]
        assert "lr-sweep" not in only_serving
        assert row_of(only_serving.split("Node prices")[1], scenario.P5_NODE)[4] == "serving/llm-serving"
        assert scenario.A3_NODE not in only_serving
        groups = only_serving.split("Most expensive, by namespace")[1]
        assert row_of(groups, "serving")[1:5] == ["1", "8", "-", "70.20"]


def test_demo_against_a_given_cluster_seeds_nothing_and_reports_what_the_operator_sees(tmp_path):
    """``--kubeconfig``: the stand-in plays the user's cluster; the demo runs in real time."""
    with ThreadedSimCluster() as sim:
        sim.create(load_crd())
        scenario.seed(sim, datetime.now(UTC) - timedelta(hours=2))
        before = {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in sim.list("v1", "pods")}
        options = DemoOptions(duration=4, out=tmp_path, kubeconfig=sim.kubeconfig, live=False)
        result = run_demo(options, Console(file=io.StringIO(), width=200))
        after = {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in sim.list("v1", "pods")}

    assert after == before  # no scenario objects added, no timeline applied
    assert {f"{row.namespace}/{row.name}" for row in result.budgets} == BUDGETS
    rows = {f"{row.namespace}/{row.name}": row for row in result.budgets}
    hpc = rows.pop(HPC_BUDGET)
    assert (hpc.spend, hpc.slurm_spend) == (Decimal(0), None)  # the operator reads no Slurm here
    assert all(row.spend > 0 for row in rows.values())  # two hours of GPUs, priced at once
    assert result.slurm_jobs == [] and result.slurm_calls == []
    assert "research/lr-sweep-trial-0-2ea4-head" in result.annotated_pods
    assert png_size(result.chart)[0] > 500
