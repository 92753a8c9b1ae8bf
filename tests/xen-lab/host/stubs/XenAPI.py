"""Import stub for xapi's XenAPI module.

dom0_pluginlib imports it for ``except XenAPI.Failure`` clauses in VBD
helpers that the agent plugin never reaches, and for ``xapi_local`` which
only ``dispatch`` on a real XenServer would call.
"""


class Failure(Exception):
    """A XenAPI error."""

    def __init__(self, details=None):
        Exception.__init__(self, details)
        self.details = details or []


def xapi_local():
    raise Failure(["NOT_A_XENSERVER", "the lab has no xapi"])
