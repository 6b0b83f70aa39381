"""``python -m testnet --sim-dht`` / ``python -m testnet.sim_cli``: a table and the JSON document of a small run."""

from __future__ import annotations

import json

import pytest

from testnet import __main__ as testnet_cli
from testnet.sim_cli import main


def test_sim_cli_prints_a_table_then_json(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--sim-dht", "--nodes", "20", "--seed", "5", "--churn", "0.2", "--loss", "0.02", "--puts", "5"]
    args += ["--gets", "10"]
    assert main(args) == 0
    out = capsys.readouterr().out
    table, _, doc = out.partition("\n\n")
    assert table.splitlines()[0].startswith("phase") and "get_after_churn" in table
    result = json.loads(doc)
    assert result["seed"] == 5 and result["nodes"] == 20 and result["loss"] == 0.02
    assert result["churn"]["crashed"] == 4 and result["get"]["success_rate"] == 1.0


def test_sim_cli_json_only(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--json", "--nodes", "10", "--puts", "2", "--gets", "4", "--churn", "0", "--loss", "0"]) == 0
    assert json.loads(capsys.readouterr().out)["nodes"] == 10


def test_testnet_sim_dht_flag(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--sim-dht", "--json", "--nodes", "10", "--puts", "2", "--gets", "4", "--churn", "0", "--dht-loss", "0.05"]
    assert testnet_cli.main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["nodes"] == 10 and doc["loss"] == 0.05
