"""Benchmarks of the gateway, run from the repository root, never collected by pytest:

    python -m bench.proxy [--quick] [--litellm] [--profile S]   # the full pipeline, req/s, latency
    python -m bench.ab --baseline REV [--quick]                  # this tree against REV, interleaved
    python -m bench.soak [--quick]                               # flat memory over a long run
    python -m bench.router                                       # the routing heuristic alone
    python -m bench.steps                                        # the pure per-request steps

Not shipped in the wheel. Each run prints its report and writes it to `bench/results/`, to a
file named for the day and the benchmark (`README.md` here explains every figure).

One concept a module. The pure ones do no I/O and read no clock: they take figures and return
figures or text, and `tests/unit/bench/` tests them:

- `scenarios`: what is sent (request bodies and paths, chat or the Responses API, streamed or
  not);
- `answers`: an answer read back (a chat completion's or a Response's text, whole or streamed);
- `measurement`: wrk's report parsed, percentiles, CPU shares, interleaved slices merged, slopes;
- `targets`: the goals and the verdict on a run;
- `comparison`: two versions' rounds paired, and whether the second regressed beyond the noise;
- `report`: tables, verdict lines, result records and their dated file names.

The others do the I/O: `processes` (child processes and what /proc says of them), `servers`
(redis-server, the simulator, the gateways, LiteLLM), `load` (load generators), `cells` (a
measured run of load with the CPU counters read around it), `profiling` (py-spy), `results`
(writing the dated files) and `checkouts` (another revision's files in a temporary directory).
The entry modules `proxy`, `ab`, `soak`, `router` and `steps` read the options and put the rest
together. Only `router` and `steps` import the gateway's code (they time pure functions of it):
the other benchmarks start it as processes, as production does.
"""
