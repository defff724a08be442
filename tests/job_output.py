"""Reading what a job printed on stdout while Ray ran in the same process."""

import json
import re

# Ray forwards its workers' and raylet's lines to the driver's stdout, each behind a "(name pid=...)" prefix,
# possibly coloured, at any moment while the session lives: also before, between and after a job's own lines
RAY_FORWARDED = re.compile(r"^(\x1b\[[0-9;]*m)*\(")


def own_output(stdout: str) -> str:
    """``stdout`` without the lines Ray forwarded into it.

    >>> own_output('{\\n\\x1b[33m(raylet)\\x1b[0m WARNING: 10 PYTHON worker processes\\n "a": 1\\n}\\n')
    '{\\n "a": 1\\n}'
    """
    return "\n".join(line for line in stdout.splitlines() if not RAY_FORWARDED.match(line))


def printed_json(stdout: str):
    """The JSON document a job printed on ``stdout``, among lines Ray forwarded.

    >>> printed_json('\\x1b[33m(raylet)\\x1b[0m WARNING: 10 PYTHON worker processes\\n{\\n "a": 1\\n}\\n')
    {'a': 1}
    """
    return json.loads(own_output(stdout))
