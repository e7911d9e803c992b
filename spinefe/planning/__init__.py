"""Seed planning: needles and their safety checks, seed patterns, fast plan evaluation with
embedded seeds, the design space and the Pareto search."""
