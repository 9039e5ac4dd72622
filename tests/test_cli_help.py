"""`opendispatch <command> --help` says what the command does, not only its options."""

from __future__ import annotations

import pytest

from opendispatch.cli import main


@pytest.mark.parametrize(
    ("command", "says"),
    [
        ("demo", "throwaway project"),
        ("console", "interactive prompt"),
        ("serve", "SIGTERM"),
        ("doctor", "No secret value is printed"),
    ],
)
def test_each_subcommand_help_has_a_description(command: str, says: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    usage, _, rest = capsys.readouterr().out.partition("\n\n")
    assert usage.startswith(f"usage: opendispatch {command}")
    description = rest.split("\n\n", 1)[0]
    assert not description.startswith("options:"), rest  # argparse prints the description here
    assert says in " ".join(description.split()), description
