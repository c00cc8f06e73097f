"""The test suite, grouped by area (space, datasets, distill, latency, predictor, search, evaluate,
report, pipeline). Shared helpers live in `tests.helpers`; the repository root is on sys.path when
pytest runs (rootdir conftest), so `tests.helpers` imports without sys.path edits."""
