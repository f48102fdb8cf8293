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


def test_a_standalone_operator_always_acts(tmp_path):
    assert runtime(tmp_path).acting()


def test_with_a_lease_a_replica_acts_only_once_it_holds_it(tmp_path):
    replica = runtime(tmp_path, lease_name="costwarden", lease_namespace="ops")
    assert not replica.acting()  # nothing renewed yet
    assert replica.leader.identity  # a name of its own in the Lease


def test_the_write_bucket_holds_at_least_a_pass_worth_of_tokens(tmp_path):
    """The bucket refills between passes; a burst below rate x interval would cap the real rate."""
    built = runtime(tmp_path, write_rate=20.0, write_burst=50, accrual_interval=10.0).limits.annotations
    assert sum(built.take(0.0) for _ in range(1000)) == 200
