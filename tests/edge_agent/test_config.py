import pytest

from central.config import load_config as load_central
from central.errors import CentralError
from edge_agent.config import load_config
from edge_agent.errors import EdgeError


@pytest.mark.parametrize(
    "toml, fragment",
    [
        ("[edge\nx=1", "cannot read"),
        ("[edge]\nno_such_setting = 1", "unknown setting"),
        ('[edge]\nlow_water = "many"', "must be a int"),
        ("[edge]\nlow_water = 20000", "low_water"),
        ("[edge]\nsync_batch = 5000", "sync_batch"),
        ('[edge]\nretry_schedule = "x,y"', "retry_schedule"),
        ("\x00\xff", "cannot read"),
        ("[edge]\nclock_warn_seconds = 7200", "clock_warn_seconds"),
        ("[edge]\nclock_warn_seconds = 0", "clock_warn_seconds"),
        ("[edge]\nmarks_every = 0", "marks_every"),
        ('[edge]\nmarks_seconds = "soon"', "must be a float"),
        ("[edge]\nreconcile_interval = 5", "reconcile_interval"),
    ],
)
def test_bad_edge_config_is_a_clear_error(tmp_path, toml, fragment):
    (tmp_path / "edge.toml").write_bytes(toml.encode("latin-1"))
    with pytest.raises(EdgeError) as exc:
        load_config(tmp_path, environ={})
    assert exc.value.code == "ERR_CONFIG" and fragment in exc.value.message


def test_bad_central_config_is_a_clear_error(tmp_path):
    bad = tmp_path / "central.toml"
    bad.write_text('[central]\nlease_max_size = "lots"\n')
    with pytest.raises(CentralError) as exc:
        load_central(environ={"LINELEDGER_CENTRAL_CONFIG": str(bad)})
    assert exc.value.code == "ERR_INVALID"
    with pytest.raises(CentralError):
        load_central({"no_such": 1}, environ={})
    with pytest.raises(CentralError):
        load_central(environ={"LINELEDGER_CENTRAL_CONFIG": str(tmp_path / "missing.toml")})
