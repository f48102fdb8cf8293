"""The node agent, ``costwarden agent``: GPU utilisation, memory and power per pod from NVML.

One agent runs on each GPU node (a DaemonSet in the chart). Every ``--interval`` seconds it asks
NVML (nvidia-ml-py, ``import pynvml``) for each GPU's utilisation, memory and power and for the
processes on it, maps each process to its pod through ``/proc/<pid>/cgroup``, and serves the result
as Prometheus metrics for the operator's ``--agent-selector`` source (docs/agent.md).

- ``cgroup``: a cgroup file's text to a pod UID (pure);
- ``readings``: what one NVML pass read, as plain records (pure);
- ``series``: readings and the PID-to-pod map folded into metric series (pure);
- ``nvml``: the NVML calls, errors turned into missing values;
- ``procfs``: ``/proc/<pid>/cgroup`` read for each PID;
- ``sampler``: one pass of the above, and the agent's error counts;
- ``exporter``: the metrics on the agent's own registry, served over HTTP;
- ``command``: the ``costwarden agent`` subcommand (loaded by name by ``costwarden.cli``).

The agent imports nothing from the operator: it labels series with the pod's UID, which the
operator, which already indexes every pod, maps to a namespace and a name.
"""
