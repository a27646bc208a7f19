"""Benchmarks for Alliance: reference ceilings on this machine, and the service's figures as a ratio to them."""
