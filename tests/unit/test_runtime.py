from pathlib import Path

from costwarden.operator.app import build_runtime
from costwarden.operator.settings import OperatorSettings

KUBECONFIG = """
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "http://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""


def runtime(tmp_path: Path, **settings):
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    return build_runtime(OperatorSettings(kubeconfig=path, metrics_port=0, **settings))


def test_a_standalone_operator_always_accrues(tmp_path):
    assert runtime(tmp_path).acting_peer(now=1e9)


def test_a_peer_accrues_only_while_its_budget_timers_run(tmp_path):
    peer = runtime(tmp_path, peering="costwarden", heartbeat_interval=10)
    assert not peer.acting_peer(now=100.0)  # no timer has run: kopf keeps this replica paused
    peer.last_timer_run = 95.0
    assert peer.acting_peer(now=100.0)
    assert peer.acting_peer(now=95.0 + 15)
    assert not peer.acting_peer(now=95.0 + 16)  # no beat for 1.5 intervals: kopf paused us


def test_the_write_bucket_holds_at_least_a_pass_worth_of_tokens(tmp_path):
    """The bucket refills between passes; a burst below rate x interval would cap the real rate."""
    built = runtime(tmp_path, write_rate=20.0, write_burst=50, accrual_interval=10.0).bucket
    assert sum(built.take(0.0) for _ in range(1000)) == 200
