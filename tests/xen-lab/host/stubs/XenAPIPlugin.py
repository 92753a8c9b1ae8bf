"""Import stub for xapi's XenAPIPlugin, enough for the os-xenapi dom0 plugins.

The plugins only call ``dispatch`` under ``if __name__ == "__main__"``; the
lab imports them as modules and calls their functions directly. ``dispatch``
is kept with xapi's error encoding for completeness.
"""

import sys


class Failure(Exception):
    """xapi's plugin failure: ErrorDescription is a list of strings."""

    def __init__(self, code, params):
        Exception.__init__(self)
        self.code = code
        self.params = params

    def __str__(self):
        return str([self.code] + list(self.params))


def dispatch(fn_table):
    """Run one plugin function named on the command line (argv: FN [K=V ...])."""
    name = sys.argv[1]
    args = dict(a.split("=", 1) for a in sys.argv[2:])
    try:
        print(fn_table[name](None, args))
    except Exception as e:  # xapi turns every exception into this
        raise Failure("XENAPI_PLUGIN_FAILURE", [name, e.__class__.__name__, str(e)])
