"""Count-script calls lowered to plain transactions, for servers that run no Lua (pure).

Some managed services refuse ``EVAL``/``EVALSHA``/``FCALL``, and Valkey 9 ships Lua as a
module that may be absent. There a count runs each call of :data:`~bitlens._plan.COUNT_SCRIPT`
as one ``MULTI``/``EXEC`` of the same commands instead: the ``BITOP``\\ s into the call's temp
keys (each followed by its 60 s ``PEXPIRE``), the ``BITCOUNT``\\ s, the ``DEL``\\ s right after
each temp key's last reader, and a final ``DEL`` of every temp key the call made and does not
keep for a later call. :func:`lower` builds that transaction from the call's keys and argv;
:func:`decode` turns the ``EXEC`` reply into exactly what the script would have returned
(one total per question, summed over the call's shards)::

    call = lower(keys, argv)  # the keys and argv of ("EVAL", COUNT_SCRIPT, n, *keys, *argv)
    replies = ...  # MULTI, *call.commands, EXEC: the EXEC array
    totals = decode(call, replies)

What stays the same: one call is one atomic unit (a transaction runs with nothing else in
between, as a script does), bounded like the script (the same argument checks and the same
:data:`~bitlens._plan.MAX_CALL_WORK` bound, raised here as :class:`~bitlens.QueryRejected`
before anything is sent; each ``BITOP`` and ``DEL`` carries at most
:data:`~bitlens._plan.BITOP_SLICE` keys), and leak-free: every temp key a call makes is
deleted inside its own transaction unless a later call of the same query reads it (kept
with its ``PEXPIRE``, as the script keeps it). A command refused at queueing (an ACL
refusal, ``OOM``) aborts the whole transaction, so nothing runs. What differs: the commands
are replicated (a script's were not: it sets ``REPL_NONE``), each temp key created and
deleted within the same transaction, and a failing command inside ``EXEC`` does not stop the
later ones (the ``DEL``\\ s still run; the executor raises the first error reply, and a kept
temp key is then deleted by the count's own cleanup).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeAlias

from ._exceptions import InvalidOption, QueryRejected
from ._script import BITOP_SLICE, COUNT_SCRIPT, MAX_CALL_WORK

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = [
    "COUNT_SHA",
    "SCRIPTS_ENV",
    "SCRIPT_MODES",
    "LoweredCall",
    "ScriptMode",
    "count_call",
    "decode",
    "lower",
    "refuses_scripts",
    "script_mode",
]

Arg: TypeAlias = "str | int | bytes"
Command: TypeAlias = "tuple[Arg, ...]"
ScriptMode: TypeAlias = Literal["auto", "lua", "none"]

SCRIPT_MODES: tuple[ScriptMode, ...] = ("auto", "lua", "none")
"""How counts run: ``"auto"`` (scripts until the server refuses them), ``"lua"``, ``"none"``."""

COUNT_SHA = hashlib.sha1(COUNT_SCRIPT.encode()).hexdigest()
"""The SHA1 digest of :data:`~bitlens._plan.COUNT_SCRIPT` (what ``EVALSHA`` names it by)."""

TEMP_TTL_MS = 60_000
"""The safety ``PEXPIRE`` of every temp key, as the script sets it."""

_OPS = {"AND": 1, "OR": 1, "XOR": 1, "DIFF": 2, "ANDOR": 2}
"""The BITOP operations a call may use, with their least number of sources."""

# Replies that say the server (or the user) runs no scripts at all: the command is unknown
# (a managed service that removed it), refused by ACL, or the Lua engine is absent (Valkey
# 9 without its lua module) or disabled. Matched in lower case.
_SCRIPT_REFUSALS = (
    "unknown command 'eval'",
    "unknown command 'evalsha'",
    "unknown command `eval`",
    "unknown command `evalsha`",
    "run the 'eval' command",
    "run the 'evalsha' command",
    "scripting engine",
    "scripting is disabled",
    "engine 'lua'",
    "lua engine",
)


@dataclass(frozen=True, slots=True)
class LoweredCall:
    """One count-script call as the commands of one ``MULTI``/``EXEC``.

    :param commands: the commands inside the transaction, in order
    :param counts: for each ``BITCOUNT``, its position in ``commands`` and its question
    :param questions: how many questions the call answers (the length of its reply)
    """

    commands: tuple[Command, ...]
    counts: tuple[tuple[int, int], ...]
    questions: int


def _int(value: object, lo: int, hi: int) -> int | None:
    """The script's ``int()``: an integer argument within ``[lo, hi]``, else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, (str, bytes)):
        try:
            number = int(value)
        except ValueError:
            return None
    else:
        return None
    return number if lo <= number <= hi else None


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# Parsed instructions: ("B", op, dest, sources), ("C", slot), ("D" | "L" | "K", slots).
_Step: TypeAlias = "tuple[str, str, int, tuple[int, ...]]"


def _parse(argv: Sequence[Arg], keys: int) -> tuple[int, int, list[_Step]]:
    """Check ``argv`` as the script does; return the slot counts and the program.

    :raises QueryRejected: for a malformed call, or one over the work bound
    """
    if len(argv) < 2:
        raise QueryRejected("the slot counts must be integers from 0")
    nleaf, ntemp = _int(argv[0], 0, MAX_CALL_WORK), _int(argv[1], 0, MAX_CALL_WORK)
    if nleaf is None or ntemp is None:
        raise QueryRejected("the slot counts must be integers from 0")
    width = nleaf + ntemp + 1
    if keys == 0 or keys % width:
        raise QueryRejected(f"{keys} keys are not whole shards of {width} slots")
    shards = keys // width
    program: list[_Step] = []
    work = 0
    i = 2
    last = nleaf + ntemp
    while i < len(argv):
        code = _text(argv[i])
        at = i + 1  # the script's 1-based argument number, in its messages
        if code == "B":
            op = _text(argv[i + 1]) if i + 1 < len(argv) else ""
            least = _OPS.get(op)
            dest = _int(argv[i + 2], nleaf + 1, last) if i + 2 < len(argv) else None
            n = _int(argv[i + 3], least or 1, len(argv) - i - 4) if i + 3 < len(argv) else None
            if not least or dest is None or n is None or (op == "ANDOR" and n > BITOP_SLICE - 3):
                raise QueryRejected(f"malformed BITOP at argument {at}")
            sources: list[int] = []
            for j in range(n):
                src = _int(argv[i + 4 + j], 1, last)
                if src is None:
                    raise QueryRejected(f"bad BITOP source at argument {at + 4 + j}")
                sources.append(src)
            program.append(("B", op, dest, tuple(sources)))
            work += n + 1
            i += 4 + n
        elif code == "C":
            slot = _int(argv[i + 1], 1, last) if i + 1 < len(argv) else None
            if slot is None:
                raise QueryRejected(f"bad BITCOUNT slot at argument {at}")
            program.append(("C", "", slot, ()))
            work += 1
            i += 2
        elif code in ("D", "L", "K"):
            n = _int(argv[i + 1], 1, len(argv) - i - 2) if i + 1 < len(argv) else None
            name = "DEL" if code == "D" else code
            if n is None:
                raise QueryRejected(f"malformed {name} at argument {at}")
            slots: list[int] = []
            for j in range(n):
                slot = _int(argv[i + 2 + j], nleaf + 1, last)
                if slot is None:
                    raise QueryRejected(f"{name} of a slot that is no temp key at argument {at}")
                slots.append(slot)
            program.append((code, "", 0, tuple(slots)))
            work += n
            i += 2 + n
        else:
            raise QueryRejected(f"unknown instruction at argument {at}")
        if work * shards > MAX_CALL_WORK:
            raise QueryRejected(f"more than {MAX_CALL_WORK} key operations in one call")
    return nleaf, ntemp, program


def lower(keys: Sequence[str], argv: Sequence[Arg]) -> LoweredCall:
    """Lower one count-script call (its ``KEYS`` and ``ARGV``) to a transaction's commands.

    The commands do what the script does, in its order, shard after shard: a ``BITOP``
    over more than :data:`~bitlens._plan.BITOP_SLICE` keys runs in slices (``dest = op(dest,
    more...)``), each followed by ``PEXPIRE dest 60000``; a ``D`` instruction deletes its
    temp keys that the call wrote or adopted (``L``); the call ends with a ``DEL`` of every
    such temp key not yet deleted and not kept (``K``) for a later call.

    :param keys: the call's keys: per shard, its leaves, its temp keys and its void key
    :param argv: the call's arguments (see :data:`~bitlens._plan.COUNT_SCRIPT`)
    :raises QueryRejected: for arguments the script would refuse (``BITLENS-ARGS``)
    """
    nleaf, ntemp, program = _parse(argv, len(keys))
    width = nleaf + ntemp + 1
    commands: list[Command] = []
    counts: list[tuple[int, int]] = []
    live: dict[str, None] = {}  # temp keys that may exist, in the order they were made
    keep: set[str] = set()
    questions = 0
    for base in range(0, len(keys), width):
        q = 0
        for code, op, slot, slots in program:
            if code == "B":
                dest = keys[base + slot - 1]
                sources = [keys[base + s - 1] for s in slots]
                first = True
                while first or sources:
                    args: list[Arg] = ["BITOP", op, dest] if first else ["BITOP", op, dest, dest]
                    room = BITOP_SLICE - len(args)
                    args += sources[:room]
                    sources = sources[room:]
                    first = False
                    commands.append(tuple(args))
                    commands.append(("PEXPIRE", dest, TEMP_TTL_MS))
                live[dest] = None
            elif code == "C":
                counts.append((len(commands), q))
                commands.append(("BITCOUNT", keys[base + slot - 1]))
                q += 1
            elif code == "L":
                for s in slots:
                    live[keys[base + s - 1]] = None
            elif code == "K":
                keep.update(keys[base + s - 1] for s in slots)
            else:
                names = [key for key in (keys[base + s - 1] for s in slots) if key in live]
                _drop(commands, names, live)
        questions = q
    _drop(commands, [key for key in live if key not in keep], live)
    return LoweredCall(tuple(commands), tuple(counts), questions)


def _drop(commands: list[Command], names: list[str], live: dict[str, None]) -> None:
    """Append ``DEL``\\ s of ``names`` in slices; they are no longer live."""
    for lo in range(0, len(names), BITOP_SLICE):
        commands.append(("DEL", *names[lo : lo + BITOP_SLICE]))
    for name in names:
        live.pop(name, None)


def decode(call: LoweredCall, replies: Sequence[object]) -> list[int] | Exception:
    """Return what the script would have returned, from the ``EXEC`` reply's items.

    One total per question, summed over the call's shards; or the first error reply (an
    exception object, as the client parsed it), which the script would have returned.

    :param call: the lowered call
    :param replies: the ``EXEC`` array: one reply per command of ``call``
    :raises QueryRejected: for a reply of the wrong length or a count that is no integer
    """
    if len(replies) != len(call.commands):
        raise QueryRejected(f"{len(replies)} replies to {len(call.commands)} commands")
    for reply in replies:
        if isinstance(reply, Exception):
            return reply
    totals = [0] * call.questions
    for at, q in call.counts:
        value = replies[at]
        if not isinstance(value, int) or isinstance(value, bool):
            raise QueryRejected(f"BITCOUNT answered {value!r}")
        totals[q] += value
    return totals


def count_call(command: Sequence[object]) -> tuple[list[str], list[Arg]] | None:
    """Return the keys and argv of a count-script command, or ``None`` for any other.

    Recognises ``EVAL`` of :data:`~bitlens._plan.COUNT_SCRIPT` and ``EVALSHA`` of
    :data:`COUNT_SHA`.

    :param command: a command as the executor sends it
    """
    if len(command) < 3:
        return None
    name = command[0]
    if not isinstance(name, (str, bytes)):
        return None
    verb = _text(name).upper()
    body = command[1]
    if not (
        (verb == "EVAL" and body == COUNT_SCRIPT)
        or (verb == "EVALSHA" and isinstance(body, (str, bytes)) and _text(body) == COUNT_SHA)
    ):
        return None
    numkeys = _int(command[2], 0, len(command) - 3)
    if numkeys is None:
        return None
    keys = [_text(k) for k in command[3 : 3 + numkeys]]
    argv: list[Arg] = []
    for arg in command[3 + numkeys :]:
        if not isinstance(arg, (str, int, bytes)):
            return None
        argv.append(arg)
    return keys, argv


def refuses_scripts(message: str) -> bool:
    """Whether an error reply says the server (or user) runs no scripts at all.

    An unknown ``EVAL``/``EVALSHA`` (a service that removed them), an ACL refusal of them,
    or an absent or disabled Lua engine. Any other error (``NOSCRIPT``, ``BUSY``, ``OOM``,
    an error the script returned) is not a refusal.

    :param message: the error reply's text
    """
    text = message.lower()
    return any(marker in text for marker in _SCRIPT_REFUSALS)


SCRIPTS_ENV = "BITLENS_SCRIPTS"
"""The environment variable giving the default of ``Tracker(..., scripts=...)``."""


def script_mode(value: object, environ: Mapping[str, str]) -> ScriptMode:
    """Return the script mode a tracker runs counts in: ``value``, else the environment's.

    :param value: the ``scripts`` option: ``"auto"``, ``"lua"``, ``"none"``, or ``None`` for
        the value of :data:`SCRIPTS_ENV` in ``environ`` (``"auto"`` when unset)
    :param environ: the process environment
    :raises InvalidOption: for any other value (also in the environment)
    """
    if value is None:
        stated = environ.get(SCRIPTS_ENV, "auto")
        for mode in SCRIPT_MODES:
            if stated == mode:
                return mode
        raise InvalidOption(SCRIPTS_ENV, stated, "'auto', 'lua' or 'none'")
    for mode in SCRIPT_MODES:
        if isinstance(value, str) and value == mode:
            return mode
    raise InvalidOption("scripts", value, "'auto', 'lua', 'none' or None")
