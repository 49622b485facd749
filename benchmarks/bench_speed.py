"""Issue 19 (speed): what-ifs from the trace cache, and a cost that does not grow with batch or output length.

Usage: ``python benchmarks/bench_speed.py [--repeats 3] [--skip-validation] [--only SUBSTRING ...]``

Every case is a fresh process, as a user runs it; "cold" means an empty trace cache (``$LLM_PERF_OPT_CACHE_DIR``
points at a new temporary folder), "warm" the same cache after one cold run. Children run with bytecode caching on
(``PYTHONDONTWRITEBYTECODE`` removed, the package compiled once first), as an installed package runs. Each process
reports its own wall time (from start to exit, measured here), its CPU time (with that of the processes it
forked: ``calibrate`` and ``validation-doc`` trace over the cores; their ``serial`` cases keep to one process), its
peak RSS (``ru_maxrss`` of the child or of its largest worker, read by a wrapper) and whether torch was imported.
Ratios are taken between cases of the same run; the cold analyze cases (the ratios' sides) run round-robin, one run
of each per round, so a drift of the machine's speed over the run reaches both sides alike.

Targets: warm standard analyze <= 1.0 s with no torch; cold <= 4 s; ``--batch 256`` cold <= 1.3x ``--batch 1``
cold; ``--max-new-tokens 8192`` <= 1.1x of 64 (measured at 7490, the most the standard workload's 8,192-token context
leaves); no input size more than 4/3x the ``--batch 1`` cold run (``--batch 1024``, and ``--batch 1024
--prompt-tokens 6000``: S = 6,694, 6.9 million prompt positions); calibrate on the committed H100 files <= 10 s;
validation-doc <= 10 s; peak RSS <= 400 MB for any batch up to 1,024 (``analyze --batch 1024``, cold); a what-if on
a warm cache (another device, dtype, output length, a page of the same tile grid, another batch once a batch basis
is kept) < 1 s.  A cold ``analyze`` of new shapes starts a background process that keeps their batch basis (it
derives every batch); the "after a cold run" cases wait for it (and print how long it ran) before the what-if, the
"right after" cases do not: the background process, still building, traces their batch for them (a wish: see
``llm_perf_opt.analysis.prepare``), as it does for a person's or a script's next command.  Every other case runs
with ``LLM_PERF_OPT_PREPARE=0`` (and waits for any background process before the next run), so no background work
overlaps a measured run; its "background off" case shows what the first batch change costs without it.  With
transformers >= 5.10.1 importable (the ``[hf]`` extra, or an overlay on ``PYTHONPATH``), three DeepSeek-OCR-2 cases
run too: its cold analyze, a batch what-if right after it, and one once the background process has kept its basis.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from llm_perf_opt.analysis.prepare import queue_worker
from llm_perf_opt.sources.deepseek_ocr2.config import MIN_TRANSFORMERS
from llm_perf_opt.sources.upstream.compat import installed_transformers, version_tuple
from llm_perf_opt.tracecache import TraceCache

WRAPPER = """
import json, resource, sys
from llm_perf_opt.cli import main
code = 0
try:
    main(sys.argv[2:])
except SystemExit as exc:
    code = exc.code or 0
with open(sys.argv[1], "w") as out:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)  # trace workers (calibrate, validation-doc)
    cpu = usage.ru_utime + usage.ru_stime + kids.ru_utime + kids.ru_stime
    json.dump({"rss_mb": max(usage.ru_maxrss, kids.ru_maxrss) / 1024, "cpu_s": cpu,
               "torch": "torch" in sys.modules, "code": code}, out)
"""


H100 = sorted(
    str(p)
    for p in Path("benchmarks/measurements").glob("nvidia-h100-*-bf16-*.json")
    if "gate-routing" not in p.name and "-b4-" not in p.name
)
"""The committed H100 files of one calibration group (bf16, balanced routing; the batch-4 point is kept out)."""


BACKGROUND_ON = {"LLM_PERF_OPT_PREPARE": "1"}
"""A cold ``analyze`` as a person runs it: shapes it traces first get a batch basis built in the background."""

SERIAL = {"LLM_PERF_OPT_TRACE_PROCESSES": "1"}
"""Tracing in the command's own process only (the baseline of tracing over the cores)."""


def child_env(**extra: str) -> dict[str, str]:
    """The environment of every measured process: bytecode caching on (as an installed package runs)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, **extra}


def compile_package() -> None:
    """Write the package's bytecode once, so no measured process pays for compiling it."""
    import llm_perf_opt

    package = str(Path(llm_perf_opt.__file__).parent)
    subprocess.run([sys.executable, "-m", "compileall", "-q", package], check=True, env=child_env())


NO_BACKGROUND = {"LLM_PERF_OPT_PREPARE": "0"}
"""Cases other than the background-basis ones: a cold run starts no background process (one would still be busy
when the next repeat starts)."""


def wait_for_background(cache: Path, timeout_s: float = 300.0) -> float:
    """Seconds until the background basis work of ``cache`` is done: no request queued (a worker takes one off only
    while it holds the queue) and no live process holding its queue (a child forked from the cold run, or ``python
    -m llm_perf_opt.analysis.prepare``)."""
    queue = TraceCache(cache).queue
    start = time.perf_counter()
    while any(queue.glob("*.json")) or queue_worker(queue) is not None:
        if time.perf_counter() - start > timeout_s:
            raise SystemExit(f"a background basis process ran over {timeout_s:.0f} s")
        time.sleep(0.05)
    return time.perf_counter() - start


def run(
    argv: list[str], cache: Path, *, script: str = WRAPPER, env: dict[str, str] | None = None, wait: bool = True
) -> dict[str, float | bool | str]:
    """One fresh process (with ``env`` added to its environment; no background basis unless ``env`` asks for one):
    wall seconds, peak RSS (MB), torch imported, and the seconds its background basis process ran on after it
    (unless ``wait`` is off: then the next run starts at once)."""
    with tempfile.NamedTemporaryFile("r", suffix=".json") as stats, tempfile.TemporaryDirectory() as out:
        args = [a.replace("{out}", out) for a in argv]
        env = child_env(LLM_PERF_OPT_CACHE_DIR=str(cache), **{**NO_BACKGROUND, **(env or {})})
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", script, stats.name, *args], check=True, env=env, stdout=subprocess.DEVNULL
        )
        wall = time.perf_counter() - start
        background = wait_for_background(cache) if wait else 0.0
        data: dict[str, float | bool | str] = json.load(stats)
    if data["code"] not in (0, None):
        raise SystemExit(f"{argv} exited with {data['code']}")
    return {**data, "wall_s": wall, "background_s": background}


def _ocr2_traceable() -> bool:
    """Whether this interpreter has the transformers DeepSeek-OCR-2 needs (then its cases run too)."""
    return version_tuple(installed_transformers() or "0") >= MIN_TRANSFORMERS


def analyze(*extra: str) -> list[str]:
    return ["analyze", "--quiet", "--out", "{out}/r", *extra]


def median_case(
    argv: list[str],
    repeats: int,
    *,
    warm: bool = False,
    script: str = WRAPPER,
    warm_with: list[str] | None = None,
    env: dict[str, str] | None = None,
    then: list[str] | None = None,
    warm_env: dict[str, str] | None = None,
    right_after: bool = False,
) -> dict[str, float]:
    """Median wall and CPU time, max RSS over ``repeats`` runs, each with a new cache folder (warmed first by one
    run of ``warm_with``, default ``argv``, if ``warm``, with ``warm_env``, and then one of ``then``); with the
    median seconds the warming run's background basis process ran on after it (0: none started, or
    ``right_after``: the measured run starts as soon as the warming one has exited)."""
    walls, cpus, rss, torch, background = [], [], [], False, []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as cache_dir:
            cache = Path(cache_dir)
            if warm:
                warmed = run(warm_with or argv, cache, script=script, env=warm_env, wait=not right_after)
                background.append(float(warmed["background_s"]))
            if then:
                run(then, cache, script=script)
            got = run(argv, cache, script=script, env=env)
        walls.append(float(got["wall_s"]))
        cpus.append(float(got["cpu_s"]))
        rss.append(float(got["rss_mb"]))
        torch = torch or bool(got["torch"])
    return {
        "wall_s": statistics.median(walls),
        "cpu_s": statistics.median(cpus),
        "rss_mb": max(rss),
        "torch": float(torch),
        "background_s": statistics.median(background) if background else 0.0,
    }


def interleaved(plan: dict[str, tuple[list[str], dict[str, str] | None]], repeats: int) -> dict[str, dict[str, float]]:
    """Cold cases (argv, env) measured round-robin, one run of each per round (each with a new cache folder), so a
    drift of the machine's speed over the rounds reaches every case alike and their ratios compare like with like;
    every other round runs them in reverse order, so no case always follows the same one (on the 2-core VM the cold
    ``--max-new-tokens`` 7490 / 64 pair measured 1.17x run in one order, 1.00x in the other); the same medians as
    :func:`median_case`."""
    runs: dict[str, list[dict[str, float | bool | str]]] = {name: [] for name in plan}
    for round_ in range(repeats):
        order = list(plan.items()) if round_ % 2 == 0 else list(reversed(plan.items()))
        for name, (argv, env) in order:
            with tempfile.TemporaryDirectory() as cache_dir:
                runs[name].append(run(argv, Path(cache_dir), env=env))
    return {
        name: {
            "wall_s": statistics.median(float(r["wall_s"]) for r in got),
            "cpu_s": statistics.median(float(r["cpu_s"]) for r in got),
            "rss_mb": max(float(r["rss_mb"]) for r in got),
            "torch": float(any(bool(r["torch"]) for r in got)),
            "background_s": 0.0,
        }
        for name, got in runs.items()
    }


def row(name: str, case: dict[str, float], target: str = "") -> None:
    torch = "torch" if case["torch"] else "no torch"
    times = f"{case['wall_s']:7.2f} s wall {case['cpu_s']:7.2f} s cpu"
    print(f"{name:40s} {times} {case['rss_mb']:5.0f} MB  {torch:8s} {target}")
    if case["background_s"]:
        print(f"{'':40s} (the cold run's background basis process ran {case['background_s']:.2f} s after it)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--skip-validation", action="store_true", help="leave out calibrate and validation-doc")
    parser.add_argument("--only", nargs="*", default=None, help="run only the cases whose name holds one of these")
    args = parser.parse_args()
    n = args.repeats
    compile_package()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, {n} run(s) per case (median wall)")
    calibrate = ["calibrate", *H100, "--out", "{out}/profile.yaml"]
    check = ["validation-doc", "--check"]
    plan: dict[str, Callable[[], dict[str, float]]] = {
        "analyze standard, warm": lambda: median_case(analyze(), n, warm=True),
        "what-if --device a100-80gb (trace warm)": lambda: median_case(
            analyze("--device", "a100-80gb"), n, warm=True, warm_with=analyze()
        ),
        "what-if --dtype fp32 (trace warm)": lambda: median_case(
            analyze("--dtype", "fp32"), n, warm=True, warm_with=analyze()
        ),
        "what-if --max-new-tokens 2000 (basis)": lambda: median_case(
            analyze("--max-new-tokens", "2000"), n, warm=True, warm_with=analyze()
        ),
        "what-if --image 1280x1280 (same grid)": lambda: median_case(
            analyze("--image", "1280x1280"), n, warm=True, warm_with=analyze()
        ),
        "what-if --batch 64 after a cold run (basis kept in the background)": lambda: median_case(
            analyze("--batch", "64"), n, warm=True, warm_with=analyze(), warm_env=BACKGROUND_ON
        ),
        "what-if --batch 64 right after a cold run (the background process traces it)": lambda: median_case(
            analyze("--batch", "64"), n, warm=True, warm_with=analyze(), warm_env=BACKGROUND_ON, right_after=True
        ),
        "what-if --batch 8 right after a cold run (the background process traces it)": lambda: median_case(
            analyze("--batch", "8"), n, warm=True, warm_with=analyze(), warm_env=BACKGROUND_ON, right_after=True
        ),
        "what-if --batch 3 right after a cold run (the background process traces it)": lambda: median_case(
            analyze("--batch", "3"), n, warm=True, warm_with=analyze(), warm_env=BACKGROUND_ON, right_after=True
        ),
        "what-if --batch 8 after a cold run (derived from the basis)": lambda: median_case(
            analyze("--batch", "8"), n, warm=True, warm_with=analyze(), warm_env=BACKGROUND_ON
        ),
        "what-if --batch 4 after a cold run (derived from the basis)": lambda: median_case(
            analyze("--batch", "4"), n, warm=True, warm_with=analyze(), warm_env=BACKGROUND_ON
        ),
        "what-if --batch 5 after a cold run (derived from the basis)": lambda: median_case(
            analyze("--batch", "5"), n, warm=True, warm_with=analyze(), warm_env=BACKGROUND_ON
        ),
        "what-if --routing skewed:1.2 --batch 30 after a cold run (derived from the basis)": lambda: median_case(
            analyze("--routing", "skewed:1.2", "--batch", "30"),
            n,
            warm=True,
            warm_with=analyze("--routing", "skewed:1.2"),
            warm_env=BACKGROUND_ON,
        ),
        "what-if --batch 8, background off (keeps a batch basis)": lambda: median_case(
            analyze("--batch", "8"), n, warm=True, warm_with=analyze()
        ),
        "what-if --batch 64 (batch basis)": lambda: median_case(
            analyze("--batch", "64"), n, warm=True, warm_with=analyze(), then=analyze("--batch", "8")
        ),
        "what-if --batch 1024 (batch basis)": lambda: median_case(
            analyze("--batch", "1024"), n, warm=True, warm_with=analyze(), then=analyze("--batch", "8")
        ),
    }
    cold = {
        "analyze standard, cold": (analyze(), None),
        "analyze standard, cold, starting its background basis": (analyze(), BACKGROUND_ON),
        "analyze --batch 1, cold": (analyze("--batch", "1"), None),
        "analyze --batch 256, cold": (analyze("--batch", "256"), None),
        "analyze --batch 1024, cold": (analyze("--batch", "1024"), None),
        "analyze --batch 1024 --prompt-tokens 6000, cold": (
            analyze("--batch", "1024", "--prompt-tokens", "6000"),
            None,
        ),
        "analyze --max-new-tokens 64, cold": (analyze("--max-new-tokens", "64"), None),
        "analyze --max-new-tokens 7490, cold": (analyze("--max-new-tokens", "7490"), None),
    }
    if _ocr2_traceable():  # (transformers >= 5.10.1 on the path: the [hf] extra)
        ocr2 = ("--model", "deepseek-ocr-2")
        ocr2_batch = "DeepSeek-OCR-2: what-if --batch 64 after a cold run (basis kept in the background)"
        plan[ocr2_batch] = lambda: median_case(
            analyze(*ocr2, "--batch", "64"), n, warm=True, warm_with=analyze(*ocr2), warm_env=BACKGROUND_ON
        )
        plan["DeepSeek-OCR-2: what-if --batch 64 right after a cold run (traced for it)"] = lambda: median_case(
            analyze(*ocr2, "--batch", "64"),
            n,
            warm=True,
            warm_with=analyze(*ocr2),
            warm_env=BACKGROUND_ON,
            right_after=True,
        )
        plan["DeepSeek-OCR-2: analyze, cold"] = lambda: median_case(analyze(*ocr2), n)
    if not args.skip_validation:
        plan["calibrate H100 files, cold"] = lambda: median_case(calibrate, n)
        plan["calibrate H100 files, warm"] = lambda: median_case(calibrate, n, warm=True)
        plan["validation-doc --check, cold"] = lambda: median_case(check, n)
        plan["validation-doc --check, warm"] = lambda: median_case(check, n, warm=True)
        plan["calibrate H100 files, cold, serial"] = lambda: median_case(calibrate, n, env=SERIAL)
        plan["validation-doc --check, cold, serial"] = lambda: median_case(check, n, env=SERIAL)

    def wanted(name: str) -> bool:
        return not args.only or any(o in name for o in args.only)

    cases = {name: measure() for name, measure in plan.items() if wanted(name)}
    cases.update(interleaved({name: case for name, case in cold.items() if wanted(name)}, n))
    targets = {
        "analyze standard, warm": "target <= 1.0 s, no torch",
        "what-if --device a100-80gb (trace warm)": "target < 1 s",
        "what-if --dtype fp32 (trace warm)": "target < 1 s",
        "what-if --max-new-tokens 2000 (basis)": "target < 1 s",
        "what-if --batch 64 after a cold run (basis kept in the background)": "target < 1 s, no torch",
        "what-if --batch 64 right after a cold run (the background process traces it)": "target < 1 s, no torch",
        "what-if --batch 8 right after a cold run (the background process traces it)": "target < 1 s, no torch",
        "what-if --batch 3 right after a cold run (the background process traces it)": "target < 1 s, no torch",
        "what-if --batch 8 after a cold run (derived from the basis)": "target < 1 s, no torch",
        "what-if --batch 4 after a cold run (derived from the basis)": "target < 1 s, no torch",
        "what-if --batch 5 after a cold run (derived from the basis)": "target < 1 s, no torch",
        "what-if --routing skewed:1.2 --batch 30 after a cold run (derived from the basis)": "target < 1 s, no torch",
        "what-if --batch 8, background off (keeps a batch basis)": "the first other batch traces (and keeps a basis)",
        "analyze standard, cold, starting its background basis": "target <= 4 s",
        "DeepSeek-OCR-2: what-if --batch 64 after a cold run (basis kept in the background)": "target < 1 s, no torch",
        "DeepSeek-OCR-2: analyze, cold": "imports transformers (the [hf] extra)",
        "what-if --batch 64 (batch basis)": "target < 1 s, no torch",
        "what-if --batch 1024 (batch basis)": "target < 1 s, no torch",
        "analyze standard, cold": "target <= 4 s",
        "calibrate H100 files, cold": "target <= 10 s",
        "validation-doc --check, cold": "target <= 10 s",
    }
    for name, case in cases.items():
        row(name, case, targets.get(name, ""))
    ratios = (
        ("batch 256 / 1 (cold)", "analyze --batch 256, cold", "analyze --batch 1, cold", 1.3, ""),
        ("batch 1024 / 1 (cold)", "analyze --batch 1024, cold", "analyze --batch 1, cold", 4 / 3, ""),
        (
            "batch 1024 x 6000 prompt tokens / batch 1 (cold)",
            "analyze --batch 1024 --prompt-tokens 6000, cold",
            "analyze --batch 1, cold",
            4 / 3,
            "; S=6,694: 6.9 million prompt positions",
        ),
        (
            "7490 / 64 new tokens (cold)",
            "analyze --max-new-tokens 7490, cold",
            "analyze --max-new-tokens 64, cold",
            1.1,
            "; 7490 is the most S=703 leaves in 8,192",
        ),
    )
    for what in ("wall_s", "cpu_s"):
        for label, top, bottom, bound, why in ratios:
            if top in cases and bottom in cases:
                ratio = cases[top][what] / cases[bottom][what]
                verdict = "met" if ratio <= bound else "not met"
                print(f"{what[:-2]:4s} ratio {label}: {ratio:.2f}x (target <= {bound:.2f}: {verdict}{why})")
    print(f"peak RSS over all cases: {max(c['rss_mb'] for c in cases.values()):.0f} MB (target <= 400 MB)")


if __name__ == "__main__":
    main()
