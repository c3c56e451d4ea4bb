import platform
import sys

import pytest

from medfeat.production import tuning


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                    reason="mallopt tuning applies to glibc only")
def test_tune_malloc_sets_thresholds_once_on_glibc():
    tuning._done = False
    assert tuning.tune_malloc() is True
    assert tuning._done is True
    assert tuning.tune_malloc() is True  # idempotent
