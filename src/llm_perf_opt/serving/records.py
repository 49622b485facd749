"""What a simulation is asked (:class:`Load`) and what it records (:class:`SimulationRun`): plain data."""

from __future__ import annotations

from attrs import field, frozen

__all__ = ["Load", "RequestRecord", "SimulationRun", "TimelineSample"]


@frozen(kw_only=True)
class Load:
    """How requests arrive: a closed loop of ``concurrency`` clients, or Poisson arrivals at ``rate`` per second."""

    requests: int = field(metadata={"help": "requests in the run"})
    concurrency: int | None = field(default=None, metadata={"help": "closed loop: clients, each sends on completion"})
    rate: float | None = field(default=None, metadata={"help": "open loop: mean arrivals per second (Poisson)"})


@frozen(kw_only=True)
class RequestRecord:
    """One finished request (seconds from the start of the run)."""

    arrival_s: float
    first_token_s: float
    finish_s: float
    prompt_tokens: int
    output_tokens: int
    image: bool
    looped: bool
    preemptions: int


@frozen(kw_only=True)
class TimelineSample:
    """Engine state at the start of an iteration (or of a run of identical decode iterations)."""

    time_s: float
    running: int
    waiting: int
    kv_blocks_used: int
    batch_tokens: int


@frozen(kw_only=True)
class SimulationRun:
    """What the engine did: finished requests, state over time, counters."""

    records: tuple[RequestRecord, ...]
    timeline: tuple[TimelineSample, ...]
    makespan_s: float
    iterations: int
    preemptions: int
    kv_blocks_total: int
    min_free_blocks: int
    timer_calls: int
    vision_runs: int = field(metadata={"help": "vision encoder runs (one per prefill start, recomputes included)"})
    in_system_area: float = field(metadata={"help": "integral of requests in the system over time (request-seconds)"})
    running_area: float = field(default=0.0, metadata={"help": "integral of running requests over time"})
