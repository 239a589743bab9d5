import pytest
from mmengine.registry import DefaultScope


@pytest.fixture(autouse=True)
def runner_scope_left_behind():
    """The Runners built here register a default scope; mmengine's context drops it on exit,
    so later tests build under the scope they had."""
    with DefaultScope.overwrite_default_scope('mmext'):
        yield
