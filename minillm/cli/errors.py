"""One line for a user's mistake: every entry point runs its main() through run_main.

A missing file, a malformed dataset line, a truncated checkpoint, a setting
that does not apply: the code that finds the problem raises one of
USER_ERRORS with a message naming the file (and line, field or tensor) and
what was expected. run_main prints it as `error: <message>` on stderr and
exits with status 1, without the traceback, which helps the reader of the
code, not the user of the command. MINILLM_DEBUG=1 shows the traceback.
"""

import os
import sys

from minillm.backend import DeviceUnavailable
from minillm.distributed.mpi import launched_ranks, run_rank
from minillm.training.trainer import NonFiniteLoss

# ValueError covers the data readers' DataFormatError, malformed JSON and safetensors, bad settings;
# OSError covers missing files and directories; KeyError an unknown name (dataset, setting, metric)
USER_ERRORS = (ValueError, OSError, KeyError, DeviceUnavailable, NonFiniteLoss)


class UsageError(ValueError):
    """A combination of flags or inputs the command cannot run, found after parsing (a user error)."""


def message(err):
    """The error's text (a KeyError's own str() wraps it in quotes), on one line."""
    text = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    return " ".join(str(text).split()) or type(err).__name__


def run_main(main, argv=None):
    """main(argv), with a user error reported as one line on stderr and exit status 1; in one of several MPI
    ranks, any error ends every rank with a line naming this one (distributed/mpi.py run_rank)."""
    if launched_ranks() > 1:
        return run_rank(run_one, main, argv)
    return run_one(main, argv)


def run_one(main, argv):
    try:
        return main(argv)
    except USER_ERRORS as err:
        if os.environ.get("MINILLM_DEBUG"):
            raise
        sys.exit(f"error: {message(err)}")
