"""One assembly of the escrow service's parts, for ``cotpay-escrow run``, the e2e tests, the
benchmark and the chaos harness (docs/running.md).

A ``Stack`` (``assembly.py``) starts named parts in order, supervises them, kills and restarts
any one by name, and stops them in reverse order. Parts (``parts.py``) are child processes
(``ProcessPart``, the Temporal ``DevServer``) or run in this event loop (``InProcessPart``).
``local_stack(plan)`` (``local.py``) is the all-processes stack ``run`` plans (``plan.py``).
"""

from starter.stack.assembly import Stack
from starter.stack.devserver import DevServer, DevServerError, dev_server
from starter.stack.local import local_stack, prepare
from starter.stack.parts import InProcessPart, Part, ProcessPart
from starter.stack.plan import StackPlan, busy_ports, ensure_key_file, plan_stack
from starter.stack.processes import ChildProcess, free_port, port_in_use

__all__ = [
    "ChildProcess",
    "DevServer",
    "DevServerError",
    "InProcessPart",
    "Part",
    "ProcessPart",
    "Stack",
    "StackPlan",
    "busy_ports",
    "dev_server",
    "ensure_key_file",
    "free_port",
    "local_stack",
    "plan_stack",
    "port_in_use",
    "prepare",
]
