"""datalayer's benchmarks: ``python -m benchmarks [--quick] [--write-results]`` (see README.md)."""
