"""dmvx: a testbed for distributed multi-variant execution (MVX).

The package ``dmvx`` is the *core*: it decides, it never does. It holds the
canonical system-call table, the broker that routes each call, the leader and
follower monitors (sans-IO state machines), the connector buffer, the
CONNECTOR wire protocol, verdicts, and the scenario/topology schemas.

It imports no SimPy, no ptrace, no sockets and reads no clock. The two modes
(``sim`` on SimPy, ``realmode`` on ptrace and Mininet) feed the same monitors
with events and carry out the actions they return.
"""

__version__ = "0.1.0"

from dmvx.compiled import activate as _activate

# Sim mode's hot modules from their mypyc build, when it is of these sources.
_activate(__name__, __path__)
