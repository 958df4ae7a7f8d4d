"""bench/throughput.py split by concern: models (setup), flops, timing, loops (the timed phases), report."""
