"""One training job across processes (torchrun): the process group, this process's rank, and the
few collectives the training loop, the mIoU scoring and the commands need.

    with distributed.session(device="cpu", sync_bn=False) as device:   # "cuda" -> "cuda:LOCAL_RANK"
        ...                                    # training.train wraps the model in DDP by itself
        if distributed.is_main():
            write_the_file()
        distributed.barrier()

Launched by torchrun (`torchrun --nproc_per_node N -m ffnet_nas evaluate ...`, or
`python -m torch.distributed.run`), every process finds RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR and MASTER_PORT in its environment; `session` reads them and opens the process
group (gloo on CPU, nccl on CUDA). Launched any other way, or by torchrun with one process, there
is no session: `rank()` is 0, `world_size()` 1, `is_main()` True, `barrier()` and the
collectives return at once, so a single process runs exactly the code it ran before this module.

With nccl, barriers and Python-object collectives go through a second, gloo group on the CPU:
nccl would need CUDA tensors for them, and a rank waiting for rank 0 (timing latency, writing
files) then sleeps instead of spinning a core.

Imports no torch at module level: the CLI reads the environment (`launched`, `env_rank`) while
building nothing else.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence

from ffnet_nas.space.errors import InvalidInput

logger = logging.getLogger(__name__)

# A rank waits at a barrier while rank 0 writes files or times a network; half an hour is torch's own
# default for gloo. A rank that dies is noticed by torchrun, which stops the others at once, so the
# timeout only ends a wait when the processes were started some other way.
DEFAULT_TIMEOUT_S = 1800.0

__all__ = ["DEFAULT_TIMEOUT_S", "Launch", "PeerFailed", "Session", "active", "all_gather_object", "all_reduce_sum", "barrier",
           "broadcast_", "broadcast_object", "check_device", "env_rank", "is_main", "launched", "main_first", "rank", "session",
           "leave", "opened_a_group", "shard", "sync_bn", "world_size"]


@dataclass(frozen=True, kw_only=True)
class Launch:
    """Where torchrun put this process (its environment variables)."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    master_addr: str
    master_port: int


@dataclass(frozen=True, kw_only=True)
class Session:
    """The open process group: the launch, this rank's device, the backend, SyncBatchNorm on or off."""

    launch: Launch
    device: str
    backend: str
    sync_bn: bool


class PeerFailed(RuntimeError):
    """A collective failed: another rank of the job stopped (its own output says why) or the
    timeout passed. The CLI turns it into exit status 2, quietly on ranks other than 0."""


_SESSION: Session | None = None
_OBJECT_GROUP: Any = None  # the gloo group for barriers and objects (None: the default group is gloo)
_OPENED_A_GROUP = False  # a session in this process created a process group (see `leave`)


def _int_env(environ: Mapping[str, str], name: str, default: str | None = None) -> int:
    text = environ.get(name, default)
    try:
        return int(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidInput(f"environment variable {name}={text!r}: expected a whole number, as torchrun sets it "
                           "(launch with torchrun, or unset RANK and WORLD_SIZE to run one process)") from None


def launched(environ: Mapping[str, str] | None = None) -> Launch | None:
    """The launch torchrun describes in the environment, or None: not launched by torchrun, or by
    torchrun with one process (which is exactly a single process, so nothing changes)."""
    env = os.environ if environ is None else environ
    if "RANK" not in env or "WORLD_SIZE" not in env:
        return None
    world = _int_env(env, "WORLD_SIZE")
    rank_ = _int_env(env, "RANK")
    if world < 1 or not 0 <= rank_ < world:
        raise InvalidInput(f"RANK={rank_}, WORLD_SIZE={world}: expected 0 <= RANK < WORLD_SIZE, as torchrun sets them")
    if world == 1:
        return None
    local_rank = _int_env(env, "LOCAL_RANK", "0")
    local_world = _int_env(env, "LOCAL_WORLD_SIZE", str(world))
    if "MASTER_ADDR" not in env or "MASTER_PORT" not in env:
        raise InvalidInput(f"RANK={rank_} of WORLD_SIZE={world} without MASTER_ADDR and MASTER_PORT: expected a "
                           "launch by torchrun, which sets them")
    return Launch(rank=rank_, world_size=world, local_rank=local_rank, local_world_size=local_world,
                  master_addr=env["MASTER_ADDR"], master_port=_int_env(env, "MASTER_PORT"))


def env_rank() -> int:
    """This process's rank as torchrun set it (0 when not launched by it), session open or not:
    the CLI decides with it who takes the workdir lock and who prints an error."""
    try:
        launch = launched()
    except InvalidInput:
        return 0  # malformed variables: the command itself reports them, on this process
    return 0 if launch is None else launch.rank


def active() -> Session | None:
    return _SESSION


def rank() -> int:
    return 0 if _SESSION is None else _SESSION.launch.rank


def world_size() -> int:
    return 1 if _SESSION is None else _SESSION.launch.world_size


def is_main() -> bool:
    """Rank 0, the one process that writes files (or the only process)."""
    return rank() == 0


def sync_bn() -> bool:
    """Whether the open session asked for SyncBatchNorm (False without one)."""
    return _SESSION is not None and _SESSION.sync_bn


def check_device(device: str, *, launch: Launch, sync_bn: bool = False) -> tuple[str, str]:
    """(this rank's device, backend) for `device` as the user gave it; InvalidInput, identical on
    every rank (so all of them stop, and none waits for another), when it cannot work."""
    import torch

    kind = str(device).split(":")[0]
    if kind == "cpu":
        if sync_bn:
            raise InvalidInput("--sync-bn with --device cpu: torch's SyncBatchNorm runs on GPUs only; expected "
                               "--device cuda, or no --sync-bn")
        return "cpu", "gloo"
    if kind != "cuda":
        raise InvalidInput(f"--device {device!r} under torchrun: expected cpu or cuda")
    if device != "cuda":
        raise InvalidInput(f"--device {device} under torchrun: expected plain 'cuda' (each of the {launch.world_size} "
                           "processes takes cuda:LOCAL_RANK; choose the GPUs with CUDA_VISIBLE_DEVICES)")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if launch.local_world_size > count:
        raise InvalidInput(f"{launch.local_world_size} processes on this node but {count} CUDA devices: expected "
                           f"--nproc_per_node of at most {count}")
    return f"cuda:{launch.local_rank}", "nccl"


@contextmanager
def session(*, device: str, sync_bn: bool = False, timeout_s: float = DEFAULT_TIMEOUT_S) -> Iterator[str]:
    """Open the process group when torchrun launched this process; yields the device this rank
    uses (`device` itself without torchrun). Closes (destroys) the group on the way out, error or not."""
    global _SESSION, _OBJECT_GROUP, _OPENED_A_GROUP

    launch = launched()
    if launch is None:
        yield device  # one process: nothing to open; plain BatchNorm is what SyncBatchNorm would compute
        return
    if _SESSION is not None:
        raise RuntimeError("a distributed session is already open in this process")
    # Everything that can fail on user input fails here, before the group exists, on every rank alike.
    local_device, backend = check_device(device, launch=launch, sync_bn=sync_bn)
    import datetime

    import torch
    import torch.distributed as dist

    if backend == "nccl":
        torch.cuda.set_device(local_device)
    timeout = datetime.timedelta(seconds=timeout_s)
    dist.init_process_group(backend=backend, init_method="env://", rank=launch.rank, world_size=launch.world_size,
                            timeout=timeout)
    _OPENED_A_GROUP = True
    try:
        _OBJECT_GROUP = dist.new_group(backend="gloo", timeout=timeout) if backend == "nccl" else None
        _SESSION = Session(launch=launch, device=local_device, backend=backend, sync_bn=bool(sync_bn))
        logger.debug("rank %d of %d on %s (%s)", launch.rank, launch.world_size, local_device, backend)
        yield local_device
        # leave together: a rank that tears its group down while another still writes or sends
        # breaks that one's connections (on an error the others may be gone: no wait then)
        barrier()
    finally:
        _SESSION, _OBJECT_GROUP = None, None
        dist.destroy_process_group()


@contextmanager
def _collective(what: str) -> Iterator[None]:
    # gloo reports a peer that exited as a plain RuntimeError ("Connection closed by peer"); a rank
    # waiting for rank 0 while rank 0 stops on bad input must end with a line, not a traceback
    try:
        yield
    except RuntimeError as e:
        raise PeerFailed(f"{what} on rank {rank()} of {world_size()} failed: another rank of this job stopped "
                         f"(its output says why) or {DEFAULT_TIMEOUT_S:.0f} s passed ({type(e).__name__})") from e


def barrier() -> None:
    """Wait until every rank is here (nothing without a session)."""
    if _SESSION is None:
        return
    import torch.distributed as dist

    with _collective("a barrier"):
        dist.barrier(group=_OBJECT_GROUP)


@contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the block first, the others after it: for caches the block may write (the
    synthetic data set) that the others should read rather than make again."""
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()


def broadcast_object(obj: Any, *, src: int = 0) -> Any:
    """`obj` as rank `src` has it, on every rank (a picklable value made by this program)."""
    if _SESSION is None:
        return obj
    import torch.distributed as dist

    box = [obj]
    with _collective("a broadcast"):
        dist.broadcast_object_list(box, src=src, group=_OBJECT_GROUP)
    return box[0]


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order, on every rank."""
    if _SESSION is None:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * world_size()
    with _collective("a gather"):
        dist.all_gather_object(out, obj, group=_OBJECT_GROUP)
    return out


def _group_for(tensor) -> Any:
    # CPU tensors take the gloo group; CUDA tensors the default (nccl) one
    return _OBJECT_GROUP if tensor.device.type == "cpu" else None


def all_reduce_sum(tensor):
    """Sum `tensor` over the ranks, in place; returns it."""
    if _SESSION is None:
        return tensor
    import torch.distributed as dist

    with _collective("a sum"):
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=_group_for(tensor))
    return tensor


def broadcast_(tensor, *, src: int = 0):
    """Overwrite `tensor` with rank `src`'s, in place; returns it."""
    if _SESSION is None:
        return tensor
    import torch.distributed as dist

    with _collective("a broadcast"):
        dist.broadcast(tensor, src=src, group=_group_for(tensor))
    return tensor


def shard(items: Sequence[Any]) -> list[Any]:
    """This rank's share of `items`: every world_size-th item from its rank (all of them without a session)."""
    return list(items)[rank()::world_size()]


def leave(code: int) -> int:
    """`code` back to the caller, unless a session in this process opened a process group: then end
    the process with status `code` at once, its output flushed, without the interpreter's teardown.

    Why: DistributedDataParallel keeps its gloo group alive past `destroy_process_group` (the
    group's threads, gloo_tcp_loop and two pt_gloo_runloop, still run afterwards and are never
    joined: torch 2.14, read from /proc/self/task), so a normal exit tears down the C++ statics and
    the Python objects around running threads. Twice (once in about six local runs of the test suite,
    once in CI, 2026-12-06) a rank ended in SIGABRT ("terminate called without an
    active exception": what C++ says when a thread is destroyed or unwound at the wrong moment) and
    torchrun reported the job failed. That teardown is the likely cause, not a proven one: about 145
    runs outside the suite never failed. Call it last: nothing after it runs, atexit handlers
    included; the files the job writes are complete by then (atomic writes, closing barrier).
    """
    if not _OPENED_A_GROUP:
        return code
    import sys

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed pipe, a closed or missing stream: nothing more can reach it
            pass
    try:  # what C and C++ code (gloo, torch) wrote through stdio: os._exit does not flush it
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except Exception:  # noqa: BLE001 - no C library to ask: nothing buffered there either
        pass
    os._exit(code)


def opened_a_group() -> bool:
    """Whether a session in this process opened a process group (then `leave` ends the process)."""
    return _OPENED_A_GROUP
