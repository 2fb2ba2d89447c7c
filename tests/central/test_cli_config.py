"""`lineledger-central config`: show, set, export, import, needs."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from central.cli import main
from tests.central.test_genconfig import GOOD


@pytest.fixture
def run(db_url, tmp_path):
    runner = CliRunner()
    env = {"LINELEDGER_CENTRAL_DB": db_url, "LINELEDGER_CENTRAL_HOME": str(tmp_path / "home")}

    def invoke(*args, input=None):
        return runner.invoke(main, list(args), env=env, input=input, catch_exceptions=False)

    assert invoke("init").exit_code == 0
    for org in ("MA01", "OT02"):
        add = invoke("tenant", "add", "--org", org, "--name", org, "--timezone", "Europe/Paris")
        assert add.exit_code == 0, add.output
    return invoke


def test_show_defaults_then_set(run):
    shown = run("config", "show", "--org", "MA01")
    assert shown.exit_code == 0 and "defaults: never configured" in shown.output
    done = run(
        "config",
        "set",
        "--org",
        "ma01",
        "--manufacturing-percentage",
        "5",
        "--tolerance",
        "2",
        "--aggregation",
        "l2=12",
        "--aggregation",
        "l3=480",
        "--sscc-source",
        "plant-a=0614141:3",
        "--serial-source",
        "sgtin-random=off",
        "--erp-url",
        "https://erp.example/api",
        "--erp-token-stdin",
        "--erp-interval",
        "900",
        input="tok-very-secret\n",
    )
    assert done.exit_code == 0, done.output
    assert "tok-very-secret" not in done.output and "token set" in done.output
    body = json.loads(run("config", "show", "--org", "MA01", "--format", "json").output)
    assert body["aggregation_rules"]["l3"] == {"enabled": True, "multiplier": 480}
    assert body["sscc_sources"] == [
        {"name": "plant-a", "company_prefix": "0614141", "extension_digit": 3, "enabled": True}
    ]
    assert [s["enabled"] for s in body["serial_sources"] if s["kind"] == "sgtin-random"] == [False]
    assert body["erp_token_set"] is True and body["erp_interval_s"] == 900
    both = json.loads(run("config", "show", "--format", "json").output)
    assert [c["org"] for c in both] == ["MA01", "OT02"]
    off = run("config", "set", "--org", "MA01", "--aggregation", "l3=off", "--clear-erp-token")
    assert off.exit_code == 0 and "l3=480 (off)" in off.output and "no token" in off.output


def test_set_refusals_print_every_field(run):
    bad = run(
        "config",
        "set",
        "--org",
        "MA01",
        "--manufacturing-percentage",
        "150",
        "--aggregation",
        "l2=12",
        "--aggregation",
        "l3=100",
        "--sscc-source",
        "x=12345:1",
    )
    assert bad.exit_code == 1
    assert "ERR_VALIDATION" in bad.output
    assert "manufacturing_percentage: Value must be between 0 and 100" in bad.output
    assert "aggregation_rules.l3.multiplier" in bad.output
    assert "sscc_sources[0].company_prefix" in bad.output
    assert "defaults" in run("config", "show", "--org", "MA01").output  # nothing written
    for args in (
        ["--aggregation", "l9=3"],
        ["--aggregation", "l2=lots"],
        ["--sscc-source", "nocolon"],
        ["--serial-source", "standard=maybe"],
        ["--erp-interval", "soon"],
        ["--remove-sscc-source", "ghost"],
        [],
    ):
        assert run("config", "set", "--org", "MA01", *args).exit_code == 2, args
    assert run("config", "set", "--org", "NOPE", "--tolerance", "1").exit_code == 1


def test_export_import_round_trip_and_dry_run(run, tmp_path):
    source = tmp_path / "in.json"
    source.write_text(json.dumps(GOOD))
    dry = run("config", "import", str(source), "--org", "MA01", "--dry-run")
    assert dry.exit_code == 0 and "would change" in dry.output
    assert "defaults" in run("config", "show", "--org", "MA01").output
    assert run("config", "import", str(source), "--org", "MA01").exit_code == 0
    out = tmp_path / "out.json"
    assert run("config", "export", "--org", "MA01", "--output", str(out)).exit_code == 0
    exported = json.loads(out.read_text())
    assert "erp_token" not in exported and "s3cret" not in out.read_text()
    assert run("config", "import", str(out), "--org", "OT02").exit_code == 0
    ma01 = json.loads(run("config", "show", "--org", "MA01", "--format", "json").output)
    ot02 = json.loads(run("config", "show", "--org", "OT02", "--format", "json").output)
    for field in ("aggregation_rules", "sscc_sources", "serial_sources", "erp_url"):
        assert ma01[field] == ot02[field]
    assert ot02["erp_token_set"] is False


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"{not json", "ERR_JSON"),
        (b'{"manufacturing_percentage": NaN}', "ERR_JSON_NONFINITE"),
        (b"[]", "ERR_VALIDATION"),
        (b'{"a": "' + b"x" * 70_000 + b'"}', "ERR_TOO_LARGE"),
        (json.dumps({**GOOD, "discrepancy_tolerance": "lots"}).encode(), "discrepancy_tolerance"),
    ],
)
def test_import_refuses_bad_files_whole(run, tmp_path, content, expected):
    bad = tmp_path / "bad.json"
    bad.write_bytes(content)
    result = run("config", "import", str(bad), "--org", "MA01")
    assert result.exit_code == 1 and expected in result.output
    assert "Traceback" not in result.output
    assert "defaults" in run("config", "show", "--org", "MA01").output


def test_needs(run):
    run("config", "set", "--org", "MA01", "--manufacturing-percentage", "5")
    run("config", "set", "--org", "MA01", "--aggregation", "l2=12", "--aggregation", "l3=480")
    text = run("config", "needs", "--org", "MA01", "--quantity", "1000").output
    assert "1050 units" in text and "l2: 88 packages of 12" in text and "SSCCs: 91" in text
    assert "requests" not in text
    body = json.loads(
        run(
            "config",
            "needs",
            "--org",
            "MA01",
            "--quantity",
            "10",
            "--overage",
            "0",
            "--format",
            "json",
        ).output
    )
    assert body["units"] == 10 and body["sscc"] == 2
    assert run("config", "needs", "--org", "MA01", "--quantity", "0").exit_code == 2
    assert (
        run("config", "needs", "--org", "MA01", "--quantity", "5", "--overage", "101").exit_code
        == 2
    )


def test_needs_grammar_and_requests_hint(run):
    run("config", "set", "--org", "MA01", "--aggregation", "l2=12")
    one = run("config", "needs", "--org", "MA01", "--quantity", "1", "--overage", "0").output
    assert "= 1 unit (l1)" in one and "l2: 1 package of 12 units" in one, one
    assert "units (l1)" not in one and "packages" not in one
    big = run(
        "config", "needs", "--org", "MA01", "--quantity", "10000000", "--overage", "100"
    ).output
    assert "SSCCs: 1,666,667" in big and "generate in 2 requests" in big, big
    assert "--force-regenerate" in big
