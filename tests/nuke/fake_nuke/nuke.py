"""A small, strict stand-in for Nuke's `nuke` module (Nuke cannot run here).

Unlike a MagicMock it implements only what the PriorfxMatte adapter uses, the
way Nuke behaves, and raises on everything else:

- an unknown node class, knob name, knob value or function is an error;
- DAG edits, knob access and `execute` from a thread other than the main
  thread raise (Nuke crashes or corrupts state there);
- `executeInMainThread*` called *on* the main thread raises (it hangs Nuke);
  calls from workers queue until the test pumps the "event loop" (`_pump`);
- a Write's EXR knobs exist only once `file_type` is exr, as in Nuke;
- `execute` refuses disabled Writes and "renders" by pulling frames through
  the graph: a Read yields its file's bytes, Input/Dot pass through, other
  classes need a renderer the test registers in `_renderers` (or raise).

Test helpers start with an underscore: `_reset`, `_pump`, `_run_until`,
`_events`, `_tasks`, `_messages`, `_user_sets`, `_renderers`.
"""
from __future__ import annotations

import os
import re
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional

GUI = True
EXE_PATH = "/opt/Nuke13.2v5/Nuke13.2"
STARTLINE = 0x1000
INVISIBLE = 0x400
DISABLED = 0x80


class FakeNukeError(RuntimeError):
    """Misuse the real Nuke would crash, hang or refuse on."""


def _main() -> None:
    if threading.current_thread() is not threading.main_thread():
        raise FakeNukeError("nuke API used from thread {!r}: DAG and knobs are main-thread only "
                            "(use nuke.executeInMainThread)".format(threading.current_thread().name))


# ----------------------------------------------------------------------------- knobs

class Knob(object):
    def __init__(self, name: str, label: Optional[str] = None, value: Any = "") -> None:
        _main()
        if not isinstance(name, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
            raise ValueError("bad knob name {!r}".format(name))
        self._name = name
        self._label = name if label is None else label
        self._value = value
        self._flags = 0
        self._enabled = True
        self._visible = True
        self._tooltip = ""
        self._expression = None  # type: Optional[str]
        self._node = None  # type: Optional[Node]

    def name(self) -> str:
        return self._name

    def label(self) -> str:
        return self._label

    def Class(self) -> str:
        return type(self).__name__

    def node(self) -> "Node":
        assert self._node is not None
        return self._node

    def _check(self, value: Any) -> Any:
        return value

    def value(self) -> Any:
        _main()
        return self._value

    def getValue(self) -> Any:
        return self.value()

    def setValue(self, value: Any) -> bool:
        _main()
        self._value = self._check(value)
        if self._node is not None:
            _events.append(("setValue", self._node.fullName(), self._name, self._value))
            self._node._knob_set(self)
        return True

    def setEnabled(self, enabled: bool) -> None:
        _main()
        self._enabled = bool(enabled)

    def enabled(self) -> bool:
        return self._enabled

    def setVisible(self, visible: bool) -> None:
        _main()
        self._visible = bool(visible)

    def visible(self) -> bool:
        return self._visible

    def setFlag(self, flag: int) -> None:
        _main()
        self._flags |= flag

    def clearFlag(self, flag: int) -> None:
        _main()
        self._flags &= ~flag

    def getFlag(self, flag: int) -> bool:
        return bool(self._flags & flag)

    def setTooltip(self, text: str) -> None:
        _main()
        self._tooltip = str(text)

    def tooltip(self) -> str:
        return self._tooltip

    def setExpression(self, expression: str, index: int = -1) -> bool:
        _main()
        if not isinstance(expression, str) or not expression:
            raise ValueError("empty expression")
        self._expression = expression
        return True

    def hasExpression(self, index: int = -1) -> bool:
        return self._expression is not None

    def expression(self) -> Optional[str]:  # test helper (Nuke reads it via toScript)
        return self._expression


class Tab_Knob(Knob):
    pass


class String_Knob(Knob):
    def __init__(self, name: str, label: Optional[str] = None, value: str = "") -> None:
        super().__init__(name, label, self._check(value))

    def _check(self, value: Any) -> Any:
        if not isinstance(value, str):
            raise TypeError("{} expects a string, got {!r}".format(type(self).__name__, value))
        return value


class File_Knob(String_Knob):
    pass


class Text_Knob(String_Knob):
    pass


class Int_Knob(Knob):
    def __init__(self, name: str, label: Optional[str] = None, value: int = 0) -> None:
        super().__init__(name, label, self._check(value))
        self._flags = STARTLINE

    def _check(self, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError("Int_Knob {} expects an int, got {!r}".format(self._name if hasattr(self, "_name") else "", value))
        return value


class Double_Knob(Knob):
    def __init__(self, name: str, label: Optional[str] = None, value: float = 0.0) -> None:
        super().__init__(name, label, float(value))
        self._range = (0.0, 1.0)
        self._flags = STARTLINE

    def _check(self, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError("Double_Knob expects a number, got {!r}".format(value))
        return float(value)

    def setRange(self, lo: float, hi: float) -> None:
        _main()
        self._range = (float(lo), float(hi))


class Boolean_Knob(Knob):
    def __init__(self, name: str, label: Optional[str] = None, value: bool = False) -> None:
        super().__init__(name, label, bool(value))

    def _check(self, value: Any) -> Any:
        if not isinstance(value, (bool, int)):
            raise TypeError("Boolean_Knob expects a bool, got {!r}".format(value))
        return bool(value)


class Enumeration_Knob(Knob):
    def __init__(self, name: str, label: str, values: List[str]) -> None:
        if not values or not all(isinstance(v, str) for v in values):
            raise TypeError("Enumeration_Knob needs a list of strings")
        super().__init__(name, label, values[0])
        self._values = list(values)
        self._flags = STARTLINE

    def _check(self, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(self._values):
            return self._values[value]
        if value not in self._values:
            raise ValueError("{!r} is not a value of {} ({})".format(value, self._name, self._values))
        return value

    def values(self) -> List[str]:
        return list(self._values)

    def numValues(self) -> int:
        return len(self._values)

    def getValue(self) -> float:
        _main()
        return float(self._values.index(self._value))


class _Array_Knob(Knob):
    """A knob of several numbers (Nuke's Array_Knob): value(i) / setValue(v, i),
    or the whole list with no index; named accessors in subclasses."""

    _size = 0

    def __init__(self, name: str, label: Optional[str] = None) -> None:
        super().__init__(name, label, [0.0] * self._size)

    def _check(self, value: Any) -> Any:
        if not isinstance(value, (list, tuple)) or len(value) != self._size or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            raise TypeError("{} {} expects {} numbers, got {!r}".format(type(self).__name__, self._name,
                                                                      self._size, value))
        return [float(v) for v in value]

    def value(self, index: Optional[int] = None) -> Any:
        _main()
        return list(self._value) if index is None else self._value[index]

    def setValue(self, value: Any, index: Optional[int] = None) -> bool:
        if index is None:
            return super().setValue(value)
        whole = list(self._value)
        whole[index] = value
        return super().setValue(whole)


class XY_Knob(_Array_Knob):
    """A position on the image (Nuke's origin: bottom-left, y up)."""

    _size = 2

    def x(self) -> float:
        return self.value(0)

    def y(self) -> float:
        return self.value(1)


class BBox_Knob(_Array_Knob):
    """A box on the image: x, y (bottom-left corner), r, t (top-right)."""

    _size = 4

    def x(self) -> float:
        return self.value(0)

    def y(self) -> float:
        return self.value(1)

    def r(self) -> float:
        return self.value(2)

    def t(self) -> float:
        return self.value(3)


class Format(object):
    def __init__(self, width: int, height: int, name: str = "") -> None:
        self._w, self._h, self._name = int(width), int(height), name

    def width(self) -> int:
        return self._w

    def height(self) -> int:
        return self._h

    def name(self) -> str:
        return self._name


def addFormat(s: str) -> Format:
    """'W H [pixel aspect] [name]', as Nuke's addFormat takes it."""
    parts = s.split()
    if len(parts) < 2 or not parts[0].isdigit() or not parts[1].isdigit():
        raise ValueError("bad format {!r}".format(s))
    return Format(int(parts[0]), int(parts[1]), parts[-1] if len(parts) > 3 else "")


class Format_Knob(Knob):
    def __init__(self, name: str, label: Optional[str] = None) -> None:
        super().__init__(name, label, Format(1920, 1080, "HD_1080"))

    def _check(self, value: Any) -> Any:
        if not isinstance(value, Format):
            raise TypeError("Format_Knob expects a Format (nuke.addFormat), got {!r}".format(value))
        return value


class Channel_Knob(String_Knob):
    """A channel or channel-set selector; only known channels are accepted."""

    def _check(self, value: Any) -> Any:
        value = super()._check(value)
        if value in ("none", "rgb", "rgba", "all", "alpha") or value in _channels():
            return value
        raise ValueError("unknown channel {!r} (add its layer with nuke.Layer first)".format(value))


class Script_Knob(Knob):
    def execute(self) -> None:
        raise FakeNukeError("fake nuke: {} has no script to execute".format(self._name))


class PyScript_Knob(Script_Knob):
    def __init__(self, name: str, label: Optional[str] = None, command: str = "") -> None:
        super().__init__(name, label, command)
        self._flags = STARTLINE

    def command(self) -> str:
        return self._value

    def execute(self) -> None:
        """Press the button: run its command as Nuke does (thisNode = owner)."""
        _main()
        _run_script(self._value, self.node(), self)


class _ReloadKnob(Script_Knob):
    def execute(self) -> None:
        _main()
        _events.append(("reload", self.node().fullName()))


# ----------------------------------------------------------------------------- nodes

_CHANNELS_BASE = ["rgba.red", "rgba.green", "rgba.blue", "rgba.alpha"]
_ENUM_ONLY = {
    "file_type": [" ", "exr", "png", "tiff", "jpeg", "dpx", "mov"],
    "datatype": ["16 bit half", "32 bit float"],
    "compression": ["none", "Zip (1 scanline)", "Zip (16 scanlines)", "PIZ Wavelet (32 scanlines)"],
    "metadata": ["no metadata", "default metadata", "default metadata and exr/*",
                 "all metadata except input/*", "all metadata"],
    "hold": ["hold", "loop", "bounce", "black"],
    "on_error": ["error", "black", "checkerboard", "nearest frame"],
    # colour-space names of nuke-default, then of the ACES configs Nuke ships
    # (aces_1.2) and of its OCIO 2 built-ins (fn-nuke_cg-config-*)
    "colorspace": ["linear", "sRGB", "rec709", "Cineon", "Gamma2.2", "AlexaV3LogC",
                   "ACES - ACEScg", "ACES - ACES2065-1", "ACES - ACEScct", "Utility - sRGB - Texture",
                   "scene_linear", "ACEScg", "ACEScct", "sRGB - Texture", "lin_rec709"],
    "OCIO_config": ["nuke-default", "aces_1.0.3", "aces_1.1", "aces_1.2",
                    "fn-nuke_cg-config-v1.0.0_aces-v1.3_ocio-v2.1",
                    "fn-nuke_studio-config-v1.0.0_aces-v1.3_ocio-v2.1", "custom"],
}


def _knobs_for(cls: str) -> List[Knob]:
    common = [String_Knob("label"), Boolean_Knob("disable")]
    if cls != "Root":  # the root's "name" knob is the script path
        common.insert(0, String_Knob("name"))
    per = {
        "Root": [Int_Knob("first_frame", value=1), Int_Knob("last_frame", value=100), Format_Knob("format"),
                 Boolean_Knob("proxy"), File_Knob("name"),
                 # Project Settings > Color (Nuke 14+): config, custom file, working space
                 Enumeration_Knob("colorManagement", "color management", ["Nuke", "OCIO"]),
                 Enumeration_Knob("OCIO_config", "OpenColorIO config", _ENUM_ONLY["OCIO_config"]),
                 File_Knob("customOCIOConfigPath"),
                 Enumeration_Knob("workingSpaceLUT", "working space", _ENUM_ONLY["colorspace"])],
        "Group": [String_Knob("knobChanged")],
        "Input": [Int_Knob("number")],
        "Output": [],
        "Dot": [],
        "Write": [File_Knob("file"), Enumeration_Knob("file_type", "file type", _ENUM_ONLY["file_type"]),
                  Channel_Knob("channels", value="rgb"), Boolean_Knob("raw"),
                  Boolean_Knob("create_directories")],
        "Read": [File_Knob("file"), Int_Knob("first", value=1), Int_Knob("last", value=1),
                 Int_Knob("origfirst", value=1), Int_Knob("origlast", value=1),
                 Enumeration_Knob("before", "before", _ENUM_ONLY["hold"]),
                 Enumeration_Knob("after", "after", _ENUM_ONLY["hold"]),
                 Enumeration_Knob("on_error", "missing frames", _ENUM_ONLY["on_error"]),
                 Boolean_Knob("raw"), _ReloadKnob("reload"), Format_Knob("format")],
        "Copy": [Channel_Knob(k, value="none") for k in
                 ("from0", "to0", "from1", "to1", "from2", "to2", "from3", "to3")],
        "Switch": [Int_Knob("which")],
        "Premult": [Channel_Knob("channels", value="rgb")],
        "Colorspace": [Enumeration_Knob("colorspace_in", "in", _ENUM_ONLY["colorspace"]),
                       Enumeration_Knob("colorspace_out", "out", _ENUM_ONLY["colorspace"])],
        "Expression": [String_Knob("expr{}".format(i)) for i in range(4)],
    }
    if cls not in per:
        raise FakeNukeError("fake nuke has no node class {!r}".format(cls))
    return common + per[cls]


_MAX_INPUTS = {"Root": 0, "Group": 0, "Input": 0, "Output": 1, "Dot": 1, "Write": 1, "Read": 0,
               "Copy": 2, "Switch": 16, "Premult": 1, "Colorspace": 1, "Expression": 1}


class FrameRange(object):
    def __init__(self, first: int, last: int) -> None:
        self._first, self._last = int(first), int(last)

    def first(self) -> int:
        return self._first

    def last(self) -> int:
        return self._last

    def frames(self) -> int:
        return self._last - self._first + 1


class Node(object):
    def __init__(self, cls: str, parent: Optional["Group"]) -> None:
        _main()
        self._class = cls
        self._knobs = {}  # type: Dict[str, Knob]
        self._inputs = {}  # type: Dict[int, Node]
        self._parent = parent
        self._selected = False
        self._deleted = False
        for k in _knobs_for(cls):
            self._attach(k)

    def _attach(self, knob: Knob) -> None:
        if knob.name() in self._knobs:
            raise FakeNukeError("{} already has a knob {!r}".format(self.name(), knob.name()))
        knob._node = self
        self._knobs[knob.name()] = knob

    def Class(self) -> str:
        return self._class

    def _knob_set(self, knob: Knob) -> None:
        # As in Nuke, a Write grows its format's knobs once file_type is chosen.
        if self._class == "Write" and knob.name() == "file_type" and knob._value == "exr":
            for k in (Enumeration_Knob("datatype", "datatype", _ENUM_ONLY["datatype"]),
                      Enumeration_Knob("compression", "compression", _ENUM_ONLY["compression"]),
                      Enumeration_Knob("metadata", "metadata", _ENUM_ONLY["metadata"])):
                if k.name() not in self._knobs:
                    self._attach(k)

    def name(self) -> str:
        if self._class == "Root":
            return "root"
        return self._knobs["name"]._value

    def fullName(self) -> str:
        if self._parent is None or self._parent is _root:
            return self.name()
        return self._parent.fullName() + "." + self.name()

    def setName(self, name: str, uncollide: bool = True, updateExpressions: bool = False) -> None:
        _main()
        if self._class == "Root":
            raise FakeNukeError("the root cannot be renamed")
        siblings = [n.name() for n in (self._parent._children if self._parent else []) if n is not self]
        if name in siblings:
            if not uncollide:
                raise ValueError("name {!r} is in use".format(name))
            stem = re.sub(r"\d+$", "", name)
            i = 1
            while "{}{}".format(stem, i) in siblings:
                i += 1
            name = "{}{}".format(stem, i)
        self._knobs["name"]._value = name

    def addKnob(self, knob: Knob) -> None:
        _main()
        if not isinstance(knob, Knob):
            raise TypeError("addKnob expects a Knob")
        self._attach(knob)

    def knob(self, name: str) -> Optional[Knob]:
        _main()
        return self._knobs.get(name)

    def knobs(self) -> Dict[str, Knob]:
        _main()
        return dict(self._knobs)

    def __getitem__(self, name: str) -> Knob:
        _main()
        if name not in self._knobs:
            raise NameError("knob {} does not exist".format(name))
        return self._knobs[name]

    def maxInputs(self) -> int:
        return _MAX_INPUTS[self._class]

    def setInput(self, i: int, node: Optional["Node"]) -> bool:
        _main()
        if i < 0 or i >= self.maxInputs():
            return False
        if node is None:
            self._inputs.pop(i, None)
        else:
            if node._parent is not self._parent:
                raise FakeNukeError("cannot connect {} to {}: different groups".format(node.fullName(), self.fullName()))
            self._inputs[i] = node
        return True

    def input(self, i: int) -> Optional["Node"]:
        _main()
        return self._inputs.get(i)

    def inputs(self) -> int:
        return max(self._inputs) + 1 if self._inputs else 0

    def setSelected(self, selected: bool) -> None:
        _main()
        self._selected = bool(selected)

    def isSelected(self) -> bool:
        return self._selected

    def frameRange(self) -> FrameRange:
        _main()
        if self._class == "Read":
            return FrameRange(self["first"]._value, self["last"]._value)
        up = self._inputs.get(0)
        if up is not None:
            return up.frameRange()
        return FrameRange(_root["first_frame"]._value, _root["last_frame"]._value)


    def format(self) -> Format:
        """A Read's own format, else its input's, else the project's."""
        _main()
        if self._class in ("Read", "Root"):
            return self["format"]._value
        up = self._inputs.get(0)
        return up.format() if up is not None else _root["format"]._value


class Group(Node):
    def __init__(self, cls: str, parent: Optional["Group"]) -> None:
        self._children = []  # type: List[Node]
        super().__init__(cls, parent)

    def maxInputs(self) -> int:
        if self._class == "Root":
            return 0
        return len([n for n in self._children if n._class == "Input"])

    def begin(self) -> "Group":
        _main()
        _context.append(self)
        return self

    def end(self) -> None:
        _main()
        if len(_context) < 2 or _context[-1] is not self:
            raise FakeNukeError("Group.end() without a matching begin() on {}".format(self.name()))
        _context.pop()

    def __enter__(self) -> "Group":
        return self.begin()

    def __exit__(self, *exc: Any) -> None:
        self.end()

    def nodes(self) -> List[Node]:
        _main()
        return list(self._children)

    def node(self, name: str) -> Optional[Node]:
        _main()
        for n in self._children:
            if n.name() == name:
                return n
        return None

    def _input_node(self, number: int) -> Optional[Node]:
        for n in self._children:
            if n._class == "Input" and n["number"]._value == number:
                return n
        return None

    def frameRange(self) -> FrameRange:
        _main()
        out = [n for n in self._children if n._class == "Output"]
        if out and out[0].input(0) is not None:
            return out[0].input(0).frameRange()  # type: ignore[union-attr]
        return super().frameRange()


def _new_node(cls: str, knobs: Dict[str, Any]) -> Node:
    _main()
    parent = _context[-1]
    node = Group(cls, parent) if cls == "Group" else Node(cls, parent)
    node.setName(knobs.pop("name", cls + "1"))
    parent._children.append(node)
    if cls == "Input":
        node["number"]._value = len([n for n in parent._children if n._class == "Input"]) - 1
    for name, value in knobs.items():
        node[name].setValue(value)
    _events.append(("create", node.fullName(), cls))
    return node


class _Nodes(object):
    def __getattr__(self, cls: str) -> Callable[..., Node]:
        if cls.startswith("_"):
            raise AttributeError(cls)
        _knobs_for(cls)  # unknown classes fail here, as in Nuke
        return lambda **knobs: _new_node(cls, dict(knobs))


nodes = _Nodes()


def createNode(cls: str, knobs: str = "", inpanel: bool = True) -> Node:
    """Like Nuke: connects to the selected node and becomes the only selection."""
    _main()
    if knobs:
        raise FakeNukeError("fake createNode does not parse TCL knob strings")
    parent = _context[-1]
    selected = [n for n in parent._children if n._selected]
    node = _new_node(cls, {})
    if selected and node.maxInputs() > 0:
        node.setInput(0, selected[-1])
    for n in parent._children:
        n._selected = n is node
    return node


def selectedNode() -> Node:
    """The selected node in the current group; ValueError when none (as in Nuke)."""
    _main()
    selected = [n for n in _context[-1]._children if n._selected]
    if not selected:
        raise ValueError("no node selected")
    return selected[-1]


class Layer(object):
    def __init__(self, name: str, channels: List[str]) -> None:
        _main()
        if not channels or not all(isinstance(c, str) and c.startswith(name + ".") for c in channels):
            raise ValueError("layer {} channels must be named {}.<channel>".format(name, name))
        _layers[name] = list(channels)

    def name(self) -> str:
        return [k for k, v in _layers.items()][-1]


def _channels() -> List[str]:
    out = list(_CHANNELS_BASE)
    for chans in _layers.values():
        out += chans
    return out


def root() -> Group:
    _main()
    return _root


def toNode(name: str) -> Optional[Node]:
    """Resolve a (dotted) name in the current group context, as Nuke does."""
    _main()
    parts = name.split(".")
    if parts[0] == "root":
        group, parts = _root, parts[1:]  # type: Optional[Node], List[str]
    else:
        group = _context[-1]
        if len(parts) > 1 and not isinstance(group, Group):
            return None
        if len(parts) > 1 and group.node(parts[0]) is None:  # type: ignore[union-attr]
            group = _root
    node = group
    for p in parts:
        if not isinstance(node, Group):
            return None
        node = node.node(p)
        if node is None:
            return None
    return node


def allNodes(filter: Optional[str] = None, group: Optional[Group] = None,
             recurseGroups: bool = False) -> List[Node]:
    _main()
    out = []  # type: List[Node]

    def walk(g: Group) -> None:
        for n in g._children:
            if filter is None or n._class == filter:
                out.append(n)
            if recurseGroups and isinstance(n, Group):
                walk(n)
    walk(group or _context[-1])
    return out


def delete(node: Node) -> None:
    _main()
    assert node._parent is not None
    node._parent._children.remove(node)
    node._deleted = True


def thisNode() -> Node:
    _main()
    if not _this:
        raise FakeNukeError("nuke.thisNode() outside a knob callback")
    return _this[-1][0]


def thisKnob() -> Knob:
    _main()
    if not _this:
        raise FakeNukeError("nuke.thisKnob() outside a knob callback")
    return _this[-1][1]


def _run_script(code: str, node: Node, knob: Knob) -> None:
    _this.append((node, knob))
    try:
        exec(compile(code, "<knob {}.{}>".format(node.name(), knob.name()), "exec"),
             {"nuke": sys.modules[__name__]})
    finally:
        _this.pop()


def _user_sets(node: Node, knob_name: str, value: Any) -> None:
    """Test helper: the artist changes a knob in the panel (fires knobChanged)."""
    knob = node[knob_name]
    knob.setValue(value)
    script = node._knobs.get("knobChanged")
    if script is not None and script._value:
        _run_script(script._value, node, knob)


def message(prompt: str) -> None:
    _main()
    _messages.append(prompt)


# ----------------------------------------------------------------------------- rendering

_renderers = {}  # type: Dict[str, Callable[[Node, int, Callable[[int], bytes]], bytes]]
_fail_execute = {}  # type: Dict[str, BaseException]   # Write name -> error to raise (tests)


def _frame_file(pattern: str, frame: int) -> str:
    m = re.search(r"#+", pattern)
    if m:
        return pattern[:m.start()] + str(frame).zfill(len(m.group(0))) + pattern[m.end():]
    if re.search(r"%0?\d*d", pattern):
        return pattern % frame
    return pattern


def _knob_now(knob: Knob) -> Any:
    """A knob's value, following the few expression forms the adapter uses."""
    expr = knob._expression
    if expr is None:
        return knob._value
    m = re.match(r"^(!)?parent\.(\w+)$", expr)
    if not m or knob._node is None or knob._node._parent is None:
        raise FakeNukeError("fake nuke cannot evaluate expression {!r}".format(expr))
    src = knob._node._parent[m.group(2)]
    value = src.getValue() if isinstance(src, Enumeration_Knob) else src._value
    return (not value) if m.group(1) else value


def _render(node: Optional[Node], frame: int) -> bytes:
    if node is None:
        raise FakeNukeError("nothing is connected to render at frame {}".format(frame))
    cls = node._class
    if cls not in ("Read", "Input") and _knob_now(node["disable"]):
        return _render(node.input(0), frame)  # a disabled node passes its input through
    if cls == "Read":
        path = _frame_file(node["file"]._value, frame)
        if not os.path.isfile(path):
            raise RuntimeError("{}: Read error: {} not found".format(node.name(), path))
        with open(path, "rb") as f:
            return f.read()
    if cls == "Input":
        group = node._parent
        assert group is not None
        return _render(group.input(node["number"]._value), frame)
    if cls == "Dot":
        return _render(node.input(0), frame)
    if cls in _renderers:
        return _renderers[cls](node, frame, lambda f: _render(node.input(0), f))
    raise FakeNukeError("fake nuke cannot render a {} node (register one in _renderers)".format(cls))


def execute(nameOrNode: Any, start: int, end: int, incr: int = 1, views: Any = None,
            continueOnError: bool = False) -> None:
    """Render a Write over start..end (main thread only, as in Nuke)."""
    _main()
    node = toNode(nameOrNode) if isinstance(nameOrNode, str) else nameOrNode
    if not isinstance(node, Node) or node._class != "Write":
        raise FakeNukeError("execute() needs a Write node, got {!r}".format(nameOrNode))
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end, incr)):
        raise TypeError("execute(node, start, end, incr) takes ints")
    if node["disable"]._value:
        raise RuntimeError("{}: cannot execute a disabled node".format(node.name()))
    pattern = node["file"]._value
    if not pattern or node["file_type"]._value not in ("exr",):
        raise RuntimeError("{}: no file or unsupported file_type".format(node.name()))
    _events.append(("execute", node.fullName(), start, end, bool(_root["proxy"]._value)))
    if node.name() in _fail_execute:
        raise _fail_execute[node.name()]
    for frame in range(start, end + 1, incr):
        data = _render(node.input(0), frame)
        path = _frame_file(pattern, frame)
        parent = os.path.dirname(path)
        if not os.path.isdir(parent):
            if not node["create_directories"]._value:
                raise RuntimeError("{}: folder {} does not exist".format(node.name(), parent))
            os.makedirs(parent)
        with open(path, "wb") as f:
            f.write(data)


# ----------------------------------------------------------------------------- threads & progress

_queue = []  # type: List[Any]
_queue_lock = threading.Lock()


def executeInMainThread(call: Callable, args: Any = (), kwargs: Any = None) -> None:
    if threading.current_thread() is threading.main_thread():
        raise FakeNukeError("executeInMainThread called from the main thread: this hangs Nuke")
    with _queue_lock:
        _queue.append((call, tuple(args), dict(kwargs or {}), None))


def executeInMainThreadWithResult(call: Callable, args: Any = (), kwargs: Any = None) -> Any:
    if threading.current_thread() is threading.main_thread():
        raise FakeNukeError("executeInMainThreadWithResult called from the main thread: this hangs Nuke")
    box = {"done": threading.Event()}  # type: Dict[str, Any]
    with _queue_lock:
        _queue.append((call, tuple(args), dict(kwargs or {}), box))
    if not box["done"].wait(300):
        raise FakeNukeError("main thread never ran the call (test did not pump)")
    if "error" in box:
        raise box["error"]
    return box.get("result")


def _pump() -> int:
    """Run queued main-thread calls (Nuke's event loop); returns how many ran."""
    _main()
    with _queue_lock:
        calls = list(_queue)
        del _queue[:]
    for call, args, kwargs, box in calls:
        try:
            result = call(*args, **kwargs)
            if box is not None:
                box["result"] = result
        except BaseException as exc:
            if box is None:
                raise
            box["error"] = exc
        finally:
            if box is not None:
                box["done"].set()
    return len(calls)


def _run_until(predicate: Callable[[], bool], timeout: float = 300.0) -> None:
    deadline = time.time() + timeout
    while True:
        _pump()
        if predicate():
            return
        if time.time() > deadline:
            raise TimeoutError("condition not reached in {} s".format(timeout))
        time.sleep(0.01)


class ProgressTask(object):
    """Usable from any thread, as in Nuke; records what it was told."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.progress = []  # type: List[int]
        self.messages = []  # type: List[str]
        self.cancelled = False
        self.thread = threading.current_thread().name
        _tasks.append(self)

    def setProgress(self, percent: int) -> None:
        if not isinstance(percent, int) or not 0 <= percent <= 100:
            raise ValueError("ProgressTask.setProgress takes an int 0..100, got {!r}".format(percent))
        self.progress.append(percent)

    def setMessage(self, text: str) -> None:
        if not isinstance(text, str):
            raise TypeError("setMessage takes a string")
        self.messages.append(text)

    def isCancelled(self) -> bool:
        return self.cancelled


# ----------------------------------------------------------------------------- menus & plug-in path

class Menu(object):
    def __init__(self, name: str) -> None:
        self.name = name
        self.items = {}  # type: Dict[str, Any]

    def addMenu(self, name: str, icon: str = "", index: int = -1) -> "Menu":
        _main()
        sub = self.items.get(name)
        if not isinstance(sub, Menu):
            sub = self.items[name] = Menu(name)
        return sub

    def addCommand(self, name: str, command: Any = None, shortcut: str = "", icon: str = "",
                   tooltip: str = "", index: int = -1) -> None:
        _main()
        if not (isinstance(command, str) or callable(command)):
            raise TypeError("addCommand needs a command string or callable")
        self.items[name] = command


def menu(name: str) -> Menu:
    _main()
    if name not in ("Nuke", "Nodes", "Pane", "Nodes Graph", "Viewer"):
        raise ValueError("no menu {!r}".format(name))
    return _menus.setdefault(name, Menu(name))


def scriptOpen(filename: str) -> None:
    """Records the call; the fake cannot parse .nk files, so the test builds the
    script in memory first (what Nuke would have loaded)."""
    _main()
    if not os.path.isfile(filename):
        raise RuntimeError("{}: No such file or directory".format(filename))
    _events.append(("scriptOpen", filename))
    _root["name"].setValue(filename)


def scriptSave(filename: Optional[str] = None) -> bool:
    _main()
    _events.append(("scriptSave", filename))
    return True


def pluginAddPath(path: str, addToSysPath: bool = True) -> None:
    _main()
    _plugin_paths.append(path)
    if addToSysPath and path not in sys.path:
        sys.path.insert(0, path)


def __getattr__(name: str) -> Any:  # module-level: anything not implemented fails loudly
    raise AttributeError("fake nuke does not implement nuke.{}".format(name))


# ----------------------------------------------------------------------------- state

_root = Group("Root", None)
_context = [_root]  # type: List[Group]
_layers = {}  # type: Dict[str, List[str]]
_events = []  # type: List[Any]
_tasks = []  # type: List[ProgressTask]
_messages = []  # type: List[str]
_menus = {}  # type: Dict[str, Menu]
_plugin_paths = []  # type: List[str]
_this = []  # type: List[Any]


def _reset() -> None:
    """A fresh, empty, unsaved script (called before each test)."""
    global _root, GUI
    _main()
    _root = Group("Root", None)
    _context[:] = [_root]
    for store in (_layers, _renderers, _fail_execute, _menus):
        store.clear()
    for seq in (_events, _tasks, _messages, _plugin_paths, _this, _queue):
        del seq[:]
    GUI = True
