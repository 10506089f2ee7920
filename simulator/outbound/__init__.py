"""The simulator's own calls to the vendor: notify and cancel, pull, probes."""
