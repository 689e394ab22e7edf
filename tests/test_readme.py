"""Every command in the README's table exists as written: its module, its subcommand and every flag it names.

Each command runs with --help appended (argparse checks the flags before it and
exits 0), and every --flag the row mentions must appear in that help. What the
commands do is tested beside their modules (tests/cli/, tests/tools/).
"""

import os
import re
import shlex
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def table_rows():
    """(command, the row's text) for each row of the README's commands table."""
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    table = text.split("## Commands", 1)[1].split("\n\n", 2)[1]
    rows = []
    for line in table.splitlines()[2:]:
        command = re.match(r"\| `([^`]+)` \|", line)
        if command and command.group(1) != "python -m pytest":
            rows.append((command.group(1), line))
    return rows


def test_the_table_has_the_main_commands():
    commands = [command for command, _ in table_rows()]
    assert {"python train.py", "python finetune.py --task sentiment"} <= set(commands) and len(commands) > 15


def help_text(args):
    return subprocess.run([sys.executable, *args, "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120).stdout


@pytest.mark.parametrize("command, row", table_rows(), ids=[command for command, _ in table_rows()])
def test_readme_command_and_its_flags_exist(command, row):
    argv = shlex.split(command)
    assert argv[0] == "python"
    done = subprocess.run([sys.executable, *argv[1:], "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, f"{command} --help failed:\n{done.stderr[-2000:]}"
    program = argv[1:3] if argv[1] == "-m" else argv[1:2]
    top = help_text(program)
    for names in re.findall(r"\{([\w,]+)\}", top.split("\n\n")[0]):  # a row may name other subcommands' flags
        done.stdout += "".join(help_text(program + [name]) for name in names.split(",") if f"`{name} " in row)
    mentioned = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", row.replace("\\|", "|")))
    missing = sorted(flag for flag in mentioned if flag not in done.stdout)
    assert not missing, f"{command}: the README names {missing}, which --help does not list"
