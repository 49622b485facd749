"""`python -m llm_perf_opt.cli` runs the command line."""

from llm_perf_opt.cli import main

main()
