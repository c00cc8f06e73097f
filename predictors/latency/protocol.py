"""How one thing is timed: device and dtype checks, warm-up, repeats until stable, estimator.

The same protocol times a LUT unit and a whole network, so the predictor's sum and the
end-to-end figure it is judged against share their ruler.

CPU: threads fixed (`torch.set_num_threads`), denormals flushed (random weights can
produce them and they are 10-100x slower on x86), the garbage collector paused while
timing, wall clock (`perf_counter_ns`). The default estimator is the 25th percentile: on a
shared CPU interference only ever *adds* time, so the lower quantiles are the repeatable
part (DESIGN.md measured the median of 10 runs moving 15-20% between rounds, the minimum
about 8%); the minimum itself is the noisiest order statistic, p25 sits between.
GPU: `cudnn.benchmark` on (autotuned kernels, tuned during warm-up), one CUDA event pair
per run (device time, not host launch time), median estimator.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

from ffnet_nas.space.errors import InvalidInput, closest

DTYPES = ("fp32", "fp16", "bf16")
# A table's precision: a float dtype, or int8 (ONNX Runtime static QDQ quantisation, `int8.py`).
PRECISIONS = (*DTYPES, "int8")
ESTIMATORS = ("p25", "p10", "median", "mean", "min", "trimmed")
CLOCKS = ("wall", "cpu")
_DEVICE_RE = re.compile(r"^(cpu|cuda)(?::(\d+))?$")


@dataclass(frozen=True)
class Protocol:
    """Settings of the timing loop; stored in every table's metadata."""

    warmup_runs: int = 3
    warmup_s: float = 0.2  # and at least this long (lets clocks, caches and autotuners settle)
    min_repeats: int = 10
    max_repeats: int = 100
    max_seconds: float = 10.0  # per measured thing, after warm-up
    rel_tol: float = 0.02  # stop when another round moves the estimate by less than this
    estimator: str = "p25"
    # "wall": elapsed time (what a user waits). "cpu": CPU time of the calling thread, for a
    # single-threaded CPU run on a *shared* machine, where wall time mostly measures the
    # scheduler (2 cores at load 6: wall ~2.5x CPU time, and bimodal). Ignored on GPU.
    clock: str = "wall"
    # Independent rounds per key, interleaved (all keys once, then all again): a burst of load
    # then hits one round of a key, not all of them, and the smallest round estimate is kept.
    rounds: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.rounds, int) or self.rounds < 1:
            raise InvalidInput(f"rounds={self.rounds!r}: expected a positive integer")
        if self.clock not in CLOCKS:
            raise InvalidInput(f"unknown clock {self.clock!r}: expected one of {', '.join(CLOCKS)}{closest(self.clock, CLOCKS)}")
        if self.estimator not in ESTIMATORS:
            raise InvalidInput(f"unknown estimator {self.estimator!r}: expected one of {', '.join(ESTIMATORS)}"
                               f"{closest(self.estimator, ESTIMATORS)}")
        if not 1 <= self.min_repeats <= self.max_repeats:
            raise InvalidInput(f"repeats {self.min_repeats}..{self.max_repeats}: expected 1 <= min <= max")
        if self.warmup_runs < 1:
            raise InvalidInput(f"warmup_runs={self.warmup_runs}: expected at least 1 (compile and autotune happen there)")

    def to_dict(self) -> dict:
        return asdict(self)


def default_protocol(device: str, **changes) -> Protocol:
    # A GPU is not shared the way a CPU is: one round and the median. On CPU, two rounds.
    base = {"estimator": "median"} if device.startswith("cuda") else {"rounds": 2}
    base.update(changes)
    return Protocol(**base)


@dataclass(frozen=True)
class Timing:
    """Summary of the timed runs, in milliseconds."""

    estimate_ms: float
    median_ms: float
    p25_ms: float
    min_ms: float
    max_ms: float
    iqr_ms: float
    n: int
    stable: bool  # the estimate settled within rel_tol before hitting max_repeats/max_seconds

    @property
    def spread(self) -> float:
        """Interquartile range relative to the median."""
        return self.iqr_ms / self.median_ms if self.median_ms else float("nan")


def quantile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    pos = q * (len(s) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def estimate(xs: list[float], estimator: str) -> float:
    if estimator == "median":
        return quantile(xs, 0.5)
    if estimator == "p25":
        return quantile(xs, 0.25)
    if estimator == "p10":
        return quantile(xs, 0.10)
    if estimator == "min":
        return min(xs)
    if estimator == "mean":
        return sum(xs) / len(xs)
    if estimator == "trimmed":  # mean of the middle half
        s = sorted(xs)
        k = len(s) // 4
        mid = s[k: len(s) - k] or s
        return sum(mid) / len(mid)
    raise InvalidInput(f"unknown estimator {estimator!r}: expected one of {', '.join(ESTIMATORS)}")


def summarize(samples_ms: list[float], estimator: str, stable: bool) -> Timing:
    return Timing(
        estimate_ms=estimate(samples_ms, estimator),
        median_ms=quantile(samples_ms, 0.5),
        p25_ms=quantile(samples_ms, 0.25),
        min_ms=min(samples_ms),
        max_ms=max(samples_ms),
        iqr_ms=quantile(samples_ms, 0.75) - quantile(samples_ms, 0.25),
        n=len(samples_ms),
        stable=stable,
    )


# ---- devices and dtypes -------------------------------------------------------------------------

def parse_device(text: str) -> str:
    """'cpu', 'cuda' or 'cuda:N' -> a normalized torch device string, checked against this machine."""
    m = _DEVICE_RE.match(str(text).strip().lower())
    if not m:
        raise InvalidInput(f"unknown device {text!r}: expected cpu, cuda or cuda:N")
    kind, index = m.group(1), m.group(2)
    if kind == "cpu":
        if index is not None:
            raise InvalidInput(f"device {text!r}: expected plain 'cpu' (use --threads to choose cores)")
        return "cpu"
    import torch

    if not torch.cuda.is_available():
        raise InvalidInput(f"device {text!r} requested but no CUDA GPU is usable here "
                           f"(torch {torch.__version__}, cuda build {torch.version.cuda}); expected --device cpu")
    count = torch.cuda.device_count()
    i = int(index or 0)
    if i >= count:
        raise InvalidInput(f"device {text!r}: this machine has {count} CUDA device(s); expected cuda:0..cuda:{count - 1}")
    return f"cuda:{i}"


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(device)
    return cpu_model()


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine() or "cpu"


def cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def check_dtype(device: str, dtype: str, backend: str, *, flags: frozenset[str] | None = None,
                cuda_capability: tuple[int, int] | None = None, cuda_bf16: bool | None = None) -> None:
    """Refuse combinations whose timing would describe no real deployment.

    CPU fp16 is refused unless the CPU computes in fp16 natively (AVX512-FP16/AMX-FP16):
    elsewhere torch emulates it and the table would time the emulation. CPU bf16 needs
    AVX512-BF16/AMX-BF16 for the same reason. ONNX Runtime's CPU provider runs fp32 only.
    The keyword arguments let tests inject a machine's capabilities.
    """
    if dtype not in PRECISIONS:
        raise InvalidInput(f"unknown dtype {dtype!r}: expected one of {', '.join(PRECISIONS)}{closest(dtype, PRECISIONS)}")
    if dtype == "int8":
        # INT8 here is ONNX Runtime's QDQ graph on its CPU provider; torch's eager int8 is another recipe
        if backend != "onnxruntime" or device != "cpu":
            raise InvalidInput(f"--precision int8 with --backend {backend} on {device}: INT8 is timed as ONNX "
                               "Runtime static quantisation on the CPU; expected --backend onnxruntime --device cpu")
        return
    if device == "cpu":
        if dtype != "fp32" and backend == "onnxruntime":
            raise InvalidInput(f"--dtype {dtype} with --backend onnxruntime on cpu: ONNX Runtime's CPU provider "
                               "has no general fp16/bf16 convolution kernels; expected --dtype fp32")
        flags = cpu_flags() if flags is None else flags
        native = {"fp16": {"avx512_fp16", "amx_fp16"}, "bf16": {"avx512_bf16", "amx_bf16"}}.get(dtype)
        if native is not None and not native & flags:
            raise InvalidInput(f"--dtype {dtype} on this cpu: it has no native {dtype} arithmetic "
                               f"({' or '.join(sorted(native))}), so the table would time an emulation; "
                               "expected --dtype fp32 (or bf16 on a cpu with avx512_bf16)")
        return
    if dtype == "fp32":
        return
    import torch

    if cuda_capability is None:
        cuda_capability = torch.cuda.get_device_capability(device)
    if dtype == "fp16" and cuda_capability < (5, 3):
        raise InvalidInput(f"--dtype fp16 on {device} (compute capability {cuda_capability}): expected >= 5.3; use fp32")
    if dtype == "bf16":
        if backend == "onnxruntime":
            raise InvalidInput("--dtype bf16 with --backend onnxruntime: expected fp32 or fp16")
        ok = torch.cuda.is_bf16_supported() if cuda_bf16 is None else cuda_bf16
        if not ok:
            raise InvalidInput(f"--dtype bf16 on {device}: this GPU has no bf16 support; expected fp32 or fp16")


def torch_dtype(dtype: str):
    import torch

    # int8 graphs are quantised from the fp32 module (int8.py): the module itself stays fp32
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16, "int8": torch.float32}[dtype]


def default_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def steady_allocator() -> bool:
    """Keep glibc from handing tensors back to the kernel between runs (Linux only).

    By default glibc serves big blocks with fresh mmap()s (above a threshold that moves with
    what was freed before, and always above 32 MiB), so a forward pass pays page faults for
    its large activations, or not, depending on history. Measured here at 256x512: stem C
    took 24 ms with 5,088 faults per run in one process state and 12.7 ms with none in
    another; the pre_down Gaussian (a 39 MB im2col buffer) 20 ms vs 6 ms. Turning mmap off
    for the heap and never trimming it gives every unit and network the steady state of a
    long-lived inference process (what jemalloc/tcmalloc, the usual advice for PyTorch CPU
    inference, give too). Process-wide and permanent, so only measuring processes should
    call it; returns whether it took effect.
    """
    import ctypes
    import ctypes.util
    import platform

    if platform.system() != "Linux":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_max = -1, -4  # from <malloc.h>
        return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))
    except (OSError, AttributeError):  # not glibc (musl, ...): nothing to pin
        return False


@contextlib.contextmanager
def measurement_context(device: str, threads: int) -> Iterator[None]:
    """Fixed threads, flushed denormals, steady allocator, autotuned cuDNN, inference mode."""
    import torch

    steady_allocator()

    old_threads = torch.get_num_threads()
    old_bench = torch.backends.cudnn.benchmark
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    if device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
    # CUDA events record on the *current* device's stream: make it the measured one.
    on_device = torch.cuda.device(device) if device.startswith("cuda") else contextlib.nullcontext()
    try:
        with on_device, torch.inference_mode():
            yield
    finally:
        torch.set_num_threads(old_threads)
        torch.set_flush_denormal(False)
        torch.backends.cudnn.benchmark = old_bench


# ---- the timing loop ------------------------------------------------------------------------

def check_clock(protocol: Protocol, device: str, threads: int) -> None:
    if protocol.clock == "cpu" and device != "cpu":
        raise InvalidInput(f"--clock cpu on {device}: GPU work is timed with CUDA events; expected --clock wall")
    if protocol.clock == "cpu" and threads != 1:
        raise InvalidInput(f"--clock cpu with --threads {threads}: CPU time adds up across threads, so it is a latency "
                           "only single-threaded; expected --threads 1 (or --clock wall)")


def _timer(device: str, clock: str = "wall") -> Callable[[Callable[[], object]], float]:
    """A function that runs `fn` once and returns its duration in ms on `device`."""
    if device.startswith("cuda"):
        import torch

        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

        def time_cuda(fn: Callable[[], object]) -> float:
            start.record()
            fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end)

        return time_cuda

    now = time.thread_time_ns if clock == "cpu" else time.perf_counter_ns

    def time_cpu(fn: Callable[[], object]) -> float:
        t0 = now()
        fn()
        return (now() - t0) / 1e6

    return time_cpu


def time_callable(fn: Callable[[], object], *, device: str, protocol: Protocol) -> Timing:
    """Warm up, then time rounds of `min_repeats` runs until the estimate is stable.

    Call it inside `measurement_context`. Compilation, autotuning and lazy initialisation
    happen in the warm-up and are therefore excluded.
    """
    run_once = _timer(device, protocol.clock)
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize(device)
    t_end = time.perf_counter() + protocol.warmup_s
    for i in range(max(protocol.warmup_runs, 1)):
        run_once(fn)
    while time.perf_counter() < t_end:
        run_once(fn)
    samples: list[float] = []
    previous = None
    stable = False
    deadline = time.perf_counter() + protocol.max_seconds
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        while len(samples) < protocol.max_repeats:
            for _ in range(min(protocol.min_repeats, protocol.max_repeats - len(samples))):
                samples.append(run_once(fn))
            current = estimate(samples, protocol.estimator)
            if previous is not None and abs(current - previous) <= protocol.rel_tol * previous:
                stable = True
                break
            previous = current
            if time.perf_counter() > deadline:
                break
    finally:
        if gc_was_enabled:
            gc.enable()
    return summarize(samples, protocol.estimator, stable)
