import re

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from central import tables as T
from central.cli import main
from central.db import Store
from tests.cli_help import check_help, command_paths


@pytest.mark.parametrize("path", sorted(command_paths(main)), ids=" ".join)
def test_every_command_has_help_with_an_example(path):
    check_help(main, path, "lineledger-central")


@pytest.fixture
def run(db_url, tmp_path):
    runner = CliRunner()
    env = {"LINELEDGER_CENTRAL_DB": db_url, "LINELEDGER_CENTRAL_HOME": str(tmp_path / "home")}

    def invoke(*args):
        return runner.invoke(main, list(args), env=env, catch_exceptions=False)

    return invoke


def test_setup_commands_against_the_database_in_the_environment(run, db_url):
    assert "active key version 1" in run("init").output
    assert run("init").exit_code == 0  # again: nothing breaks
    assert (
        run(
            "tenant", "add", "--org", "ma01", "--name", "Maison", "--timezone", "Europe/Paris"
        ).exit_code
        == 0
    )
    assert (
        run(
            "product",
            "add",
            "--org",
            "MA01",
            "--sku",
            "T1",
            "--category",
            "bag",
            "--name",
            "Tote",
            "--gtin",
            "4006381333931",
        ).exit_code
        == 0
    )
    assert (
        run(
            "work-order",
            "add",
            "--org",
            "MA01",
            "--number",
            "WO-1",
            "--sku",
            "T1",
            "--type",
            "HAT",
            "--quantity",
            "10",
        ).exit_code
        == 0
    )
    out = run("agent", "enroll-code", "--org", "MA01", "--line", "L1").output
    code = out.split()[-1]
    assert re.fullmatch(r"[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}", code)
    assert "new leases use key version 2" in run("keys", "rotate").output
    assert (
        run(
            "tenant",
            "flag",
            "--org",
            "MA01",
            "--key",
            "FF_VERIFY_PUBLIC_MODE",
            "--value",
            "standard",
        ).exit_code
        == 0
    )
    listing = run("keys", "list").output.splitlines()
    assert len(listing) == 2 and listing[1].endswith("active")
    assert "MA01\tMaison\tEurope/Paris" in run("tenant", "list").output
    store = Store(db_url)
    try:
        with store.read() as conn:
            product = conn.execute(sa.select(T.products)).one()
            assert (product.category, product.gtin) == ("BAG", "04006381333931")
            code_row = conn.execute(sa.select(T.enrollment_codes)).one()
            assert code not in code_row.code_hash  # only the hash is stored
    finally:
        store.dispose()


@pytest.mark.parametrize(
    "args, code",
    [
        (("tenant", "add", "--org", "M", "--name", "x"), "ERR_INVALID"),
        (
            ("tenant", "add", "--org", "MA01", "--name", "x", "--timezone", "Mars/Base"),
            "ERR_INVALID",
        ),
        (
            ("product", "add", "--org", "NOPE", "--sku", "S", "--category", "BAG", "--name", "x"),
            "ERR_TENANT_UNKNOWN",
        ),
        (
            (
                "product",
                "add",
                "--org",
                "MA01",
                "--sku",
                "S",
                "--category",
                "BAG",
                "--name",
                "x",
                "--gtin",
                "4006381333932",
            ),
            "ERR_GTIN",
        ),
        (
            (
                "work-order",
                "add",
                "--org",
                "MA01",
                "--number",
                "W",
                "--sku",
                "NOPE",
                "--type",
                "OEM",
                "--quantity",
                "1",
            ),
            "ERR_PRODUCT_UNKNOWN",
        ),
        (
            ("tenant", "flag", "--org", "MA01", "--key", "FF_VERIFY_PUBLIC_MODE", "--value", "all"),
            "ERR_INVALID",
        ),
    ],
)
def test_bad_input_gets_a_one_line_error_with_a_code(run, args, code):
    run("init")
    run("tenant", "add", "--org", "MA01", "--name", "Maison")
    result = run(*args)
    assert result.exit_code == 1
    assert f"Error: {code}:" in result.output
    assert "Traceback" not in result.output


def test_commands_before_init_say_what_to_do(run):
    result = run("tenant", "list")
    assert result.exit_code == 1 and "ERR_NOT_INITIALISED" in result.output


def test_a_keyring_that_does_not_match_is_refused(run, tmp_path):
    run("init")
    (tmp_path / "home" / "master_keys.json").write_text('{"versions": {"1": "' + "ab" * 32 + '"}}')
    result = run("keys", "rotate")
    assert result.exit_code == 1 and "ERR_KEYRING" in result.output


def test_a_product_brand_is_set_cleared_and_checked(run, db_url):
    """#7: `product add --brand` and `product brand`; a bad brand gets a one-line ERR_INVALID."""
    run("init")
    run("tenant", "add", "--org", "MA01", "--name", "Maison")
    add = ("product", "add", "--org", "MA01", "--category", "BAG", "--name", "Tote")
    assert run(*add, "--sku", "T1", "--brand", " Acme Travel ").exit_code == 0
    assert run(*add, "--sku", "T2").exit_code == 0
    for bad in ("", "   ", "A" * 101, "Acme\x1b[31m", "Acme\u202egnp.exe", "Ac\nme"):
        for args in (
            (*add, "--sku", "T3", "--brand", bad),
            ("product", "brand", "--org", "MA01", "--sku", "T1", "--brand", bad),
        ):
            result = run(*args)
            assert result.exit_code == 1, (bad, result.output)
            assert result.output.startswith("Error: ERR_INVALID: the brand")
            assert len(result.output.splitlines()) == 1 and "Traceback" not in result.output
    assert "U+202E" in run(*add, "--sku", "T3", "--brand", "Acme\u202egnp.exe").output
    both = run("product", "brand", "--org", "MA01", "--sku", "T2", "--brand", "X", "--clear")
    assert both.exit_code == 1 and "ERR_INVALID" in both.output
    nope = run("product", "brand", "--org", "MA01", "--sku", "NOPE", "--brand", "X")
    assert nope.exit_code == 1 and "ERR_PRODUCT_UNKNOWN" in nope.output
    assert (
        run("product", "brand", "--org", "ma01", "--sku", "T2", "--brand", "Ü" * 100).exit_code == 0
    )
    assert run("product", "brand", "--org", "MA01", "--sku", "T1", "--clear").exit_code == 0
    store = Store(db_url)
    try:
        with store.read() as conn:
            rows = conn.execute(sa.select(T.products.c.sku, T.products.c.brand)).all()
        assert sorted(rows) == [("T1", None), ("T2", "Ü" * 100)]  # T3 was never added
    finally:
        store.dispose()


def test_a_reader_that_went_away_is_not_an_error(central_config, tenant):
    """`lineledger-central work-order list … | head` must not end with ERR_IO."""
    import os
    import subprocess

    from tests.procs import cli, env_with

    read, write = os.pipe()
    os.close(read)  # the reader is gone before the command writes a byte: EPIPE at once
    try:
        done = subprocess.run(
            [cli("lineledger-central"), "work-order", "list", "--org", "MA01", "--format", "csv"],
            env=env_with(
                LINELEDGER_CENTRAL_HOME=central_config["home"],
                LINELEDGER_CENTRAL_DB=central_config["db_url"],
            ),
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write)
    assert done.returncode == 0, done.stderr
    assert "ERR_IO" not in done.stderr and "Traceback" not in done.stderr
