"""The command line, end to end on small data."""

import dataclasses
import json
import re
from pathlib import Path

import pytest

from jaxunsup import cli
from jaxunsup.registry import EXPERIMENTS


def test_list_names_every_experiment(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    for name, exp in EXPERIMENTS.items():
        assert name in out and exp.seed in out


def test_unknown_experiment_lists_choices(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["run", "no-such-model", "--workdir", "x"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "no-such-model" in err and "ae-stacked" in err


def test_unknown_field_and_bad_value(capsys, tmp_path):
    with pytest.raises(SystemExit):
        cli.main(["run", "ae-stacked", "--workdir", str(tmp_path), "--no-such-field", "1"])
    assert "unrecognized arguments" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["run", "ae-stacked", "--workdir", str(tmp_path), "--epochs", "many"])
    assert "invalid int value" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["run", "ae-stacked", "--workdir", str(tmp_path), "--hidden", "1,x"])
    assert "comma-separated" in capsys.readouterr().err


def test_help_lists_fields_with_defaults(capsys):
    with pytest.raises(SystemExit):
        cli.main(["run", "ae-stacked", "--help"])
    out = capsys.readouterr().out
    assert "--batch-size" in out and "(default: 50)" in out and "128,32,10" in out


def test_invalid_value_is_a_clean_error(capsys, tmp_path):
    assert cli.main(["run", "ae-stacked", "--workdir", str(tmp_path), "--lr", "-1"]) == 2
    err = capsys.readouterr().err
    assert "lr must be a positive number" in err and "Traceback" not in err


def test_run_writes_all_artifacts(capsys, tmp_path):
    args = ["run", "ae-stacked", "--workdir", str(tmp_path), "--epochs", "2", "--lr", "1e-3"]
    assert cli.main(args) == 0
    for name in ("config.json", "metrics.jsonl", "results.json", "reconstructions.png"):
        assert (tmp_path / name).exists()
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 2
    assert "results:" in capsys.readouterr().out


def test_reproduce_report_names_runs_and_links_existing_files(tmp_path):
    assert cli.main(["reproduce", "--workdir", str(tmp_path), "--only", "ae-stacked"]) == 0
    summary = json.loads((tmp_path / "results.json").read_text())
    assert summary["ae-stacked"]["status"] == "ok"
    page = (tmp_path / "report" / "index.html").read_text()
    for name in summary:
        assert f"<h2>{name}</h2>" in page
    links = re.findall(r"src='([^']+)'", page)
    assert links, "the report shows no figure"
    for link in links:
        assert (tmp_path / "report" / link).resolve().is_file(), link
    assert all(not Path(link).is_absolute() for link in links)


def test_style_transfer_subcommand_dispatches(capsys, tmp_path):
    out = tmp_path / "s.png"
    args = ["style-transfer", "--random-vgg", "--size", "16", "--steps", "3", "--out", str(out)]
    assert cli.main(args) == 0
    assert out.exists() and "random VGG19 weights" in capsys.readouterr().out
    bad = ["style-transfer", "--random-vgg", "--size", "0", "--out", str(out)]
    assert cli.main(bad) == 2
    assert "size" in capsys.readouterr().err


def test_run_kmeans_circles_through_the_cli(capsys, tmp_path):
    assert cli.main(["run", "kmeans-circles", "--workdir", str(tmp_path), "--seed", "1"]) == 0
    assert json.loads((tmp_path / "config.json").read_text())["seed"] == 1
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["kmeans"]["inertia"] > 0 and (tmp_path / "kmeans_circles.png").exists()
    assert "results:" in capsys.readouterr().out


@pytest.mark.parametrize("preset", ["default", "quick", "full"])
def test_every_preset_makes_its_config(preset):
    """Each experiment's presets name real Config fields (a misspelt key would only fail in
    `make demo`) and land in the Config it makes."""
    for name, exp in EXPERIMENTS.items():
        cfg = exp.make_config(preset)
        assert isinstance(cfg, exp.config), name
        for field, value in {"default": {}, "quick": exp.quick, "full": exp.full}[preset].items():
            assert getattr(cfg, field) == value, (name, field)


def test_style_transfer_flags_come_from_its_config(capsys):
    """Every Config field is a `style-transfer` flag (as for `run`), with README's flags."""
    from jaxunsup import style_transfer

    argv = ["style-transfer", "--history-size", "7", "--style-layers", "conv_1,conv_2",
            "--optimizer", "adam", "--vgg-weights", "none", "--random-vgg",
            "--out", "x.png"]  # fmt: skip
    args = cli.build_parser(argv).parse_args(argv)
    cfg = cli._config(args, EXPERIMENTS["style-transfer"])
    want = dict(history_size=7, style_layers=("conv_1", "conv_2"), optimizer="adam",
                random_vgg=True)  # fmt: skip
    assert cfg == style_transfer.Config(**want) and args.out == Path("x.png")
    with pytest.raises(SystemExit):
        cli.main(["style-transfer", "--help"])
    shown = capsys.readouterr().out
    for field in dataclasses.fields(style_transfer.Config):
        assert f"--{field.name.replace('_', '-')}" in shown, field.name
    for flag in ("--content", "--style", "--vgg-weights", "--out", "--random-vgg", "--conv-impl"):
        assert flag in shown
    assert "content image file or sample name" in shown  # a field's help metadata
    with pytest.raises(SystemExit):
        cli.main(["style-transfer", "--optimizer", "sgd"])
    assert "invalid choice: 'sgd'" in capsys.readouterr().err
