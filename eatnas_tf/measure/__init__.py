"""Measurements of converted models on this machine (LiteRT latency), below both `epnas`
(the latency constraint) and `export` (the export report) so neither imports the other."""
