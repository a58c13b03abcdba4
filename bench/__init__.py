"""Benchmarks (`make bench`): every figure is a ratio against a baseline measured in the
same run, or a count such as AWS API calls."""
