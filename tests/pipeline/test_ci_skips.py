"""In CI a test that skips because a component CI installs is missing fails instead (tests/conftest.py)."""

from pathlib import Path

pytest_plugins = ["pytester"]

CONFTEST = (Path(__file__).resolve().parents[1] / "conftest.py").read_text()
TESTS = '''
import pytest

def test_needs_chromium():
    pytest.skip("Chromium not installed (Debian: apt-get install chromium)")

def test_needs_a_cpu_feature():
    pytest.skip("this CPU computes fp16 natively")
'''


def test_a_missing_ci_component_fails_under_ci_and_skips_locally(pytester, monkeypatch):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_skips=TESTS)
    monkeypatch.setenv("CI", "true")
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(failed=1, skipped=1)
    monkeypatch.delenv("CI")
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(skipped=2)
