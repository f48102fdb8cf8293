#!/usr/bin/env bash
# costwarden's node agent on a real NVIDIA GPU: does it see a CUDA load, and the GPU go idle after?
#
#   bench/gpu_check.sh            (on a machine with an NVIDIA driver; no Kubernetes needed)
#
# 1. Finds a Python with costwarden and nvidia-ml-py: $PYTHON, else the repository's .venv, else
#    it creates .venv-gpu-check (with the system's site-packages, so an installed PyTorch is seen)
#    and installs the repository into it (needs PyPI).
# 2. Starts `costwarden agent` on 127.0.0.1:$PORT with a pass every $INTERVAL seconds.
# 3. With a PyTorch that has CUDA ($LOAD_PYTHON, else the agent's Python, else python3): runs a
#    float16 matmul loop on GPU $GPU (NVML's index; the load gets CUDA_DEVICE_ORDER=PCI_BUS_ID and
#    CUDA_VISIBLE_DEVICES=$GPU, so CUDA's device 0 is NVML's GPU $GPU), finds the load's PID in
#    costwarden_gpu_process_info (its pod_uid: "" outside a pod), and reads
#    costwarden_gpu_utilization_percent{gpu=$GPU,pod_uid=<that>} every $INTERVAL seconds for
#    $BUSY_SECONDS; then stops the load, waits for NVML's window to pass, and reads the GPU for
#    $IDLE_SECONDS. Without such a PyTorch only the idle half runs (NVML reads, no load).
# 4. Prints every figure and the medians; exits 1 if the busy median is under $BUSY_MIN (50) %, the
#    idle median over $IDLE_MAX (10) %, or the load's PID is not among the GPU's processes; 2 if
#    the machine cannot run the check (no driver, no Python with the agent).
#
# NVML's utilisation is "percent of time over the past sample period during which one or more
# kernels was executing on the GPU", the period being 1/6 s to 1 s by product (NVML API reference,
# nvmlUtilization_t, https://docs.nvidia.com/deploy/nvml-api/structnvmlUtilization__t.html). The
# idle half needs the GPU to be otherwise unused. NVML reports PIDs as the driver sees them: run
# this in the host's PID namespace (on the host, or in a container or pod with hostPID).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PORT=${PORT:-9431}
INTERVAL=${INTERVAL:-1}
GPU=${GPU:-0}
BUSY_SECONDS=${BUSY_SECONDS:-20}
IDLE_SECONDS=${IDLE_SECONDS:-10}
BUSY_MIN=${BUSY_MIN:-50}
IDLE_MAX=${IDLE_MAX:-10}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/costwarden-gpu-check.XXXXXX")

say() { printf 'gpu_check: %s\n' "$*"; }
has_agent() { "$1" -c 'import costwarden.agent.command, pynvml, prometheus_client' >/dev/null 2>&1; }
has_cuda_torch() { "$1" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' >/dev/null 2>&1; }

AGENT_PID=""
cleanup() {
    if [[ -n "$AGENT_PID" ]] && kill -0 "$AGENT_PID" 2>/dev/null; then
        kill "$AGENT_PID" 2>/dev/null || true
        wait "$AGENT_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# 1. A Python with the agent.
PY=${PYTHON:-}
if [[ -z "$PY" ]]; then
    if [[ -x "$ROOT/.venv/bin/python" ]] && has_agent "$ROOT/.venv/bin/python"; then
        PY="$ROOT/.venv/bin/python"
    else
        VENV="$ROOT/.venv-gpu-check"
        if [[ ! -x "$VENV/bin/python" ]] || ! has_agent "$VENV/bin/python"; then
            say "installing costwarden into $VENV"
            python3 -m venv --system-site-packages "$VENV"
            if ! "$VENV/bin/python" -m pip install -q "$ROOT"; then
                say "cannot install costwarden (needs PyPI); set PYTHON to a Python that has it"
                exit 2
            fi
        fi
        PY="$VENV/bin/python"
    fi
fi
if ! has_agent "$PY"; then
    say "$PY lacks costwarden's agent, nvidia-ml-py or prometheus-client"
    exit 2
fi

# The driver, as the agent will see it (one line from NVML when it is missing).
if ! "$PY" -c 'import pynvml; pynvml.nvmlInit(); print(pynvml.nvmlDeviceGetCount(), "GPU(s), driver", pynvml.nvmlSystemGetDriverVersion())' >"$WORK/nvml.txt" 2>&1; then
    say "NVML is not usable here: $(tail -n 1 "$WORK/nvml.txt")"
    exit 2
fi
say "NVML: $(cat "$WORK/nvml.txt")"

# A Python with a CUDA PyTorch for the load (optional).
LOAD_PY=${LOAD_PYTHON:-}
if [[ -z "$LOAD_PY" ]]; then
    for candidate in "$PY" python3; do
        if command -v "$candidate" >/dev/null && has_cuda_torch "$candidate"; then
            LOAD_PY=$(command -v "$candidate")
            break
        fi
    done
elif ! has_cuda_torch "$LOAD_PY"; then
    say "LOAD_PYTHON=$LOAD_PY has no PyTorch with CUDA"
    exit 2
fi

# 2. The agent.
"$PY" -m costwarden.cli agent --host 127.0.0.1 --port "$PORT" --interval "$INTERVAL" >"$WORK/agent.log" 2>&1 &
AGENT_PID=$!
say "agent pid $AGENT_PID on 127.0.0.1:$PORT, a pass every ${INTERVAL}s (log: $WORK/agent.log)"

# 3 and 4, in Python: the load, the scrapes, the figures and the verdict.
cat >"$WORK/load.py" <<'EOF'
"""A float16 matmul loop on CUDA device 0 for argv[1] seconds (or until killed)."""
import sys
import time

import torch

a = torch.randn(8192, 8192, device="cuda", dtype=torch.float16)
b = torch.randn_like(a)
torch.cuda.synchronize()
print("ready", flush=True)
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    for _ in range(16):
        a @ b
    torch.cuda.synchronize()
EOF

cat >"$WORK/check.py" <<'EOF'
import os
import statistics
import subprocess
import sys
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

PORT, GPU = int(os.environ["PORT"]), os.environ["GPU"]
INTERVAL = float(os.environ["INTERVAL"])
BUSY_SECONDS, IDLE_SECONDS = float(os.environ["BUSY_SECONDS"]), float(os.environ["IDLE_SECONDS"])
BUSY_MIN, IDLE_MAX = float(os.environ["BUSY_MIN"]), float(os.environ["IDLE_MAX"])
LOAD_PY, AGENT_PID = os.environ.get("LOAD_PY", ""), int(os.environ["AGENT_PID"])


def say(text):
    print(f"gpu_check: {text}", flush=True)


def agent_alive():
    """The agent (the shell's child, not ours) still runs: /proc/<pid>/stat exists, not a zombie."""
    try:
        with open(f"/proc/{AGENT_PID}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def scrape():
    """{metric name: [(labels, value)]} from the agent's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/metrics", timeout=5) as response:
        text = response.read().decode()
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def utilization(metrics, pod_uid):
    """The GPU's utilisation in the series of ``pod_uid`` (None: no such series)."""
    for labels, value in metrics.get("costwarden_gpu_utilization_percent", []):
        if labels["gpu"] == GPU and labels["pod_uid"] == pod_uid:
            return value
    return None


def gpu_utilization(metrics):
    """The GPU's utilisation from any of its series (all carry the GPU's figure)."""
    values = [v for labels, v in metrics.get("costwarden_gpu_utilization_percent", []) if labels["gpu"] == GPU]
    return max(values) if values else None


def process(metrics, pid):
    """(gpu, pod_uid) of ``pid`` among the processes the agent lists, or None."""
    for labels, _ in metrics.get("costwarden_gpu_process_info", []):
        if labels["pid"] == str(pid):
            return labels["gpu"], labels["pod_uid"]
    return None


deadline = time.monotonic() + 30
while True:
    if not agent_alive():
        say("the agent exited")
        sys.exit(2)
    try:
        metrics = scrape()
        break
    except OSError:
        if time.monotonic() > deadline:
            say("the agent never answered on /metrics")
            sys.exit(2)
        time.sleep(0.5)
if not any(v == 1 for _, v in metrics.get("costwarden_agent_up", [])):
    say("costwarden_agent_up is not 1: NVML failed the agent's first pass")
    sys.exit(2)
if gpu_utilization(metrics) is None:
    gpus = sorted({labels["gpu"] for labels, _ in metrics.get("costwarden_gpu_utilization_percent", [])})
    say(f"the agent reports no utilisation for GPU {GPU} (GPUs with utilisation: {gpus})")
    sys.exit(2)

failures = []
busy = []
if LOAD_PY:
    env = dict(os.environ, CUDA_DEVICE_ORDER="PCI_BUS_ID", CUDA_VISIBLE_DEVICES=GPU)
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "load.py")
    load = subprocess.Popen(
        [LOAD_PY, script, str(BUSY_SECONDS + 60)], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        if load.stdout.readline().strip() != "ready":
            say("the CUDA load did not start")
            sys.exit(2)
        say(f"CUDA load: pid {load.pid} ({LOAD_PY}), matmul loop on GPU {GPU}")
        time.sleep(max(3.0, 2 * INTERVAL))  # NVML's window and one agent pass
        seen = None
        end = time.monotonic() + BUSY_SECONDS
        while time.monotonic() < end:
            metrics = scrape()
            seen = process(metrics, load.pid) or seen
            uid = seen[1] if seen else ""
            value = utilization(metrics, uid)
            if value is not None:
                busy.append(value)
            where = f"pod_uid={uid!r}" if seen else "pid not listed"
            say(f"busy  utilisation {value}%  ({where})")
            time.sleep(INTERVAL)
    finally:
        load.terminate()
        load.wait(30)
    if seen is None:
        failures.append(
            f"the load's pid {load.pid} never appeared in costwarden_gpu_process_info: NVML lists the PIDs of "
            "the driver's PID namespace; run this where they are this shell's (host PID namespace)"
        )
    elif seen[0] != GPU:
        failures.append(f"the load's pid {load.pid} is listed on GPU {seen[0]}, not {GPU}")
    else:
        owner = "in no pod (pod_uid=\"\")" if seen[1] == "" else f"in pod {seen[1]}"
        say(f"the load's pid {load.pid} is listed on GPU {GPU}, {owner}")
else:
    say("no PyTorch with CUDA: the busy half is skipped; only the idle GPU is checked (NVML reads)")

time.sleep(3 * INTERVAL + 2)  # the load's last kernels leave NVML's window
idle = []
end = time.monotonic() + IDLE_SECONDS
while time.monotonic() < end:
    value = gpu_utilization(scrape())
    if value is not None:
        idle.append(value)
    say(f"idle  utilisation {value}%")
    time.sleep(INTERVAL)

if LOAD_PY and not busy:
    failures.append(f"no utilisation series for the load's pod_uid on GPU {GPU} while it ran")
if busy:
    median = statistics.median(busy)
    say(f"busy: median {median}% over {len(busy)} scrapes (min {min(busy)}, max {max(busy)}); need >= {BUSY_MIN}%")
    if not median >= BUSY_MIN:
        failures.append(f"busy median {median}% < {BUSY_MIN}%")
if not idle:
    failures.append(f"no utilisation series for GPU {GPU} while idle")
else:
    median = statistics.median(idle)
    say(f"idle: median {median}% over {len(idle)} scrapes (min {min(idle)}, max {max(idle)}); need <= {IDLE_MAX}%")
    if not median <= IDLE_MAX:
        failures.append(f"idle median {median}% > {IDLE_MAX}%")
for failure in failures:
    say(f"FAIL: {failure}")
say("PASS" if not failures else "FAILED")
sys.exit(1 if failures else 0)
EOF

status=0
PORT=$PORT GPU=$GPU INTERVAL=$INTERVAL BUSY_SECONDS=$BUSY_SECONDS IDLE_SECONDS=$IDLE_SECONDS \
    BUSY_MIN=$BUSY_MIN IDLE_MAX=$IDLE_MAX LOAD_PY=$LOAD_PY AGENT_PID=$AGENT_PID \
    "$PY" "$WORK/check.py" || status=$?
if [[ $status -eq 2 ]]; then
    say "agent log:"
    sed 's/^/  /' "$WORK/agent.log" >&2 || true
fi
exit "$status"
