import pytest
from alert_support import make_fleet


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """Two signed pumps and their registry (alert_support.py)."""
    return make_fleet(tmp_path_factory.mktemp("ids"))
