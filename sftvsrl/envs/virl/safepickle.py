"""Plain-data pickles from outside, loaded without running anything they ask for.

Before anything is built, :func:`scan_pickle` replays the opcode stream on a stack of depths:
every declared length must fit in the bytes left, memo indices may not exceed the opcodes seen,
and containers may nest at most ``MAX_PICKLE_DEPTH`` deep. Then :class:`PlainDataUnpickler`
runs, which resolves no globals except ``set``, ``frozenset`` and ``collections.OrderedDict``
and no persistent ids. (The V-IRL loader reads its GPS->panorama index with it.)
"""

from __future__ import annotations

import _compat_pickle
import io
import pickle
import pickletools
from typing import Any

MAX_PICKLE_DEPTH = 100
_ALLOWED_GLOBALS = {("builtins", "set"), ("builtins", "frozenset"), ("collections", "OrderedDict")}


class PlainDataUnpickler(pickle.Unpickler):
    """Unpickles plain data only: any global outside a tiny allow-list is refused, so a
    malicious pickle cannot reach a callable (os.system, eval, ...) and nothing executes."""

    def find_class(self, module: str, name: str) -> Any:
        # Protocols 0-2 write Python 2 names (``__builtin__.set``); map them as pickle does.
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}: only plain data is allowed")

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refusing persistent ids: only plain data is allowed")


class _Node:
    """A container built by the pickle, as the scan sees it: its nesting depth, and the
    containers that hold it (so a container filled after it was placed deepens them too)."""

    __slots__ = ("depth", "parents")

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.parents: list[_Node] | None = None


_ATOM = _Node(0)  # every scalar (numbers, strings, None, globals) shares one depth-0 node
_MARK = object()
_ATOMS = frozenset(
    [
        "INT",
        "BININT",
        "BININT1",
        "BININT2",
        "LONG",
        "LONG1",
        "LONG4",
        "STRING",
        "BINSTRING",
        "SHORT_BINSTRING",
        "BINBYTES",
        "SHORT_BINBYTES",
        "BINBYTES8",
        "BYTEARRAY8",
        "NONE",
        "NEWTRUE",
        "NEWFALSE",
        "UNICODE",
        "SHORT_BINUNICODE",
        "BINUNICODE",
        "BINUNICODE8",
        "FLOAT",
        "BINFLOAT",
        "GLOBAL",
        "EXT1",
        "EXT2",
        "EXT4",
        "PERSID",
        "NEXT_BUFFER",
    ]
)
_EMPTY = frozenset(["EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET", "EMPTY_TUPLE"])
_FROM_MARK = frozenset(["TUPLE", "LIST", "DICT", "FROZENSET", "OBJ", "INST"])
_POP_PUSH = {"TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3, "REDUCE": 2, "NEWOBJ": 2, "NEWOBJ_EX": 3,
             "STACK_GLOBAL": 2, "BINPERSID": 1, "READONLY_BUFFER": 1}  # fmt: skip
_FILL_ONE = {"APPEND": 1, "SETITEM": 2, "BUILD": 1}
_FILL_MARK = frozenset(["APPENDS", "SETITEMS", "ADDITEMS"])
_PUT = frozenset(["PUT", "BINPUT", "LONG_BINPUT"])
_GET = frozenset(["GET", "BINGET", "LONG_BINGET"])


class _PickleScan:
    """Replays a pickle's opcodes on a stack of depths, building nothing.

    Refuses (``ValueError``) every declared length past the end of the data, memo indices
    that would make the unpickler allocate a huge memo table, and any container nested
    deeper than ``MAX_PICKLE_DEPTH`` (a self-containing list counts as unbounded depth).
    """

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.stack: list[Any] = []
        self.memo: dict[int, _Node] = {}
        self.opcodes = 0
        self.raised = 0  # depth raises of already-placed containers: bounded work

    def _pop(self) -> _Node:
        if not self.stack or self.stack[-1] is _MARK:
            raise ValueError("the opcodes pop an empty stack")
        return self.stack.pop()

    def _pop_mark(self) -> list[_Node]:
        stack = self.stack
        for i in range(len(stack) - 1, -1, -1):
            if stack[i] is _MARK:
                items = stack[i + 1 :]
                del stack[i:]
                return items
        raise ValueError("the opcodes pop to a MARK that was never set")

    def _deepen(self, node: _Node, depth: int) -> None:
        """Raise ``node`` to ``depth`` and every container holding it accordingly."""
        todo = [(node, depth)]
        while todo:
            node, depth = todo.pop()
            if depth <= node.depth:
                continue
            if depth > MAX_PICKLE_DEPTH:
                raise ValueError(f"containers nested deeper than {MAX_PICKLE_DEPTH} levels (or recursive)")
            node.depth = depth
            if node.parents:
                self.raised += len(node.parents)
                if self.raised > self.opcodes + 1_000_000:
                    raise ValueError("the pickle re-fills shared containers too often")
                todo.extend((parent, depth + 1) for parent in node.parents)

    def _hold(self, parent: _Node, children: list[_Node]) -> None:
        if parent is _ATOM:  # filling a scalar: the unpickler will refuse it
            parent = _Node(1)
        deepest = 0
        for child in children:
            if child is _ATOM:
                continue
            if child.parents is None:
                child.parents = [parent]
            else:
                child.parents.append(parent)
            deepest = max(deepest, child.depth)
        self._deepen(parent, deepest + 1)

    def _new(self, children: list[_Node]) -> _Node:
        node = _Node(1)
        self._hold(node, children)
        return node

    def _memo_index(self, index: int) -> int:
        if not 0 <= index <= self.opcodes:
            raise ValueError(f"memo index {index} is larger than the pickle could need")
        return index

    def run(self) -> None:
        size = len(self.data)
        stack = self.stack
        for op, arg, pos in pickletools.genops(self.data):
            self.opcodes += 1
            name = op.name
            if name in _ATOMS:  # globals are refused by PlainDataUnpickler.find_class
                stack.append(_ATOM)
            elif name in _EMPTY:
                stack.append(_Node(1))
            elif name == "MARK":
                stack.append(_MARK)
            elif name in _FILL_MARK:
                items = self._pop_mark()
                self._hold(self._pop_top(), items)
            elif name in _FILL_ONE:
                items = [self._pop() for _ in range(_FILL_ONE[name])]
                self._hold(self._pop_top(), items)
            elif name in _FROM_MARK:
                stack.append(self._new(self._pop_mark()))
            elif name in _POP_PUSH:
                stack.append(self._new([self._pop() for _ in range(_POP_PUSH[name])]))
            elif name in _PUT or name == "MEMOIZE":
                if not stack or stack[-1] is _MARK:
                    raise ValueError("memoizing an empty stack")
                index = len(self.memo) if name == "MEMOIZE" else self._memo_index(int(arg))
                self.memo[index] = stack[-1]
            elif name in _GET:
                if int(arg) not in self.memo:
                    raise ValueError(f"memo index {arg} was never stored")
                stack.append(self.memo[int(arg)])
            elif name == "POP":
                if not stack:
                    raise ValueError("the opcodes pop an empty stack")
                stack.pop()
            elif name == "POP_MARK":
                self._pop_mark()
            elif name == "DUP":
                stack.append(self._pop_top())
            elif name == "FRAME":
                if arg > size - pos - 9:
                    raise ValueError(f"a frame of {arg} bytes at byte {pos}, past the end of the data")
            elif name == "STOP":
                if len(stack) != 1 or stack[0] is _MARK:
                    raise ValueError("the pickle does not end with exactly one object")
            elif name != "PROTO":
                raise ValueError(f"opcode {name} is not plain data")

    def _pop_top(self) -> _Node:
        """The top of the stack, left in place."""
        if not self.stack or self.stack[-1] is _MARK:
            raise ValueError("the opcodes use an empty stack")
        return self.stack[-1]


def scan_pickle(data: bytes) -> None:
    """Check a pickle's opcode stream before anything is built; ValueError says what is
    wrong. (Globals are left to ``PlainDataUnpickler.find_class``, which maps protocol 0-2
    names such as ``__builtin__.set`` as the unpickler does.)

    Declared lengths past the end of the data fail as the opcodes are read
    (``pickletools.genops`` reads each argument in full), so a 12-byte pickle cannot ask
    for 2**62 bytes; nesting and memo indices are bounded here.
    """
    _PickleScan(data).run()


# What a hostile or broken pickle can raise from load_plain_pickle.
PICKLE_ERRORS = (
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    TypeError,
    IndexError,
    KeyError,
    AttributeError,
    OverflowError,
    MemoryError,
    RecursionError,
)


def load_plain_pickle(data: bytes) -> Any:
    """Scan ``data`` (:func:`scan_pickle`), then load it with :class:`PlainDataUnpickler`;
    raises one of ``PICKLE_ERRORS``."""
    scan_pickle(data)
    return PlainDataUnpickler(io.BytesIO(data)).load()


__all__ = ["MAX_PICKLE_DEPTH", "PICKLE_ERRORS", "PlainDataUnpickler", "load_plain_pickle", "scan_pickle"]
