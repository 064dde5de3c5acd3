"""Data-parallel training over several processes with torch.distributed: joining the process group
that torchrun describes in the environment, this process's place in it, the few collective
operations the training loop needs, and starting such a group on this machine.

Every process (rank) trains the same model on its own rows of each batch; DistributedDataParallel
averages the gradients. The group uses NCCL on GPUs and gloo on CPUs. Without torchrun's
environment a process trains alone, as rank 0 of 1, and these functions cost nothing.
"""

import os
import sys
import uuid
from datetime import timedelta

import torch
import torch.distributed as dist

# A collective operation that waits longer than this for another rank fails, so a hung rank stops
# the run instead of holding it forever (a rank that dies is noticed at once: its sockets close).
TIMEOUT = timedelta(minutes=10)
MIN_ROWS = 25  # drawings of a batch per process at least: below that, a CPU process has too little to do


def launched():
    """Whether torchrun (or a launcher that sets the same variables) started this process."""
    return "WORLD_SIZE" in os.environ


def join(device):
    """Join the group torchrun's environment describes, if any; returns the device this rank trains on
    (its own GPU: LOCAL_RANK's)."""
    if not launched():
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=TIMEOUT)
    return device


def leave():
    if dist.is_initialized():
        dist.destroy_process_group()


def rank():
    return dist.get_rank() if dist.is_initialized() else 0


def world_size():
    return dist.get_world_size() if dist.is_initialized() else 1


def all_reduce(tensor, op=dist.ReduceOp.SUM):
    """`tensor` reduced over every rank, in place (on the tensor's own device: NCCL needs the GPU)."""
    if dist.is_initialized():
        dist.all_reduce(tensor, op)
    return tensor


def barrier():
    """Wait until every rank has come here."""
    if dist.is_initialized():
        dist.barrier()


def cpu_cores():
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def processes_for(cores, batch_size):
    """How many training processes share `cores` CPU cores: one per core, with at least MIN_ROWS
    drawings of each batch each. On two cores, two processes of one thread train 0.8-1.2x as fast as
    one process of two threads, depending on preset and cell (benchmarks/README.md), and at least as
    fast as one process split its batches among threads."""
    return max(1, min(cores, batch_size // MIN_ROWS))


def threads_per_process(cores):
    """Torch threads of this rank: the cores shared among the processes on this machine."""
    return max(1, cores // int(os.environ.get("LOCAL_WORLD_SIZE", 1)))


def launch(command, processes):
    """Run `command` (a Python script and its arguments) in `processes` processes on this machine, as
    `torchrun --standalone --nproc-per-node=<processes> <command>` would: a signal to this process
    (Ctrl-C, SIGTERM) is passed on to each of them, and when one fails the others are stopped.
    Returns the exit status: 0, 130 when stopped by a signal, or that of the first process that failed.

    Stopped by a signal, each process finishes its step (and a validation in progress) and saves
    last.pt, which can take longer than the 30 s torch's launcher waits by default before it kills
    them; it waits as long as a collective operation may (TIMEOUT)."""
    from torch.distributed.elastic.multiprocessing import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=processes, run_id=str(uuid.uuid4()),
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0,
                          shutdown_timeout=int(TIMEOUT.total_seconds()))
    try:
        elastic_launch(config, sys.executable)(*command)
    except ChildFailedError as e:
        _, failure = e.get_first_failure()
        return failure.exitcode if failure.exitcode > 0 else 128 - failure.exitcode
    except SignalException:
        return 130  # what a process stopped by Ctrl-C or SIGTERM exits with (its last.pt saved)
    return 0
