"""Top-level windows of an X display (Xvfb, no window manager), found by title.

The OBS app test closes the Filters dialog the way a window manager does when the
user clicks its close button: a WM_DELETE_WINDOW message to the window.
"""
from __future__ import annotations

from Xlib import X, display as xdisplay
from Xlib.protocol import event


def _title(dpy, win) -> str:
    utf8 = dpy.intern_atom("UTF8_STRING")
    prop = win.get_full_property(dpy.intern_atom("_NET_WM_NAME"), utf8)
    if prop is not None:
        return prop.value.decode("utf-8", "replace")
    name = win.get_wm_name()
    return name.decode("latin-1") if isinstance(name, bytes) else (name or "")


def find_window(display: str, title: str):
    """(display connection, window) of the mapped window titled `title`, or None."""
    dpy = xdisplay.Display(display)
    for win in dpy.screen().root.query_tree().children:
        if win.get_attributes().map_state == X.IsViewable and _title(dpy, win) == title:
            return dpy, win
    dpy.close()
    return None


def request_close(display: str, title: str) -> bool:
    """Ask the window titled `title` to close (WM_DELETE_WINDOW); False if none is shown."""
    found = find_window(display, title)
    if found is None:
        return False
    dpy, win = found
    protocols = dpy.intern_atom("WM_PROTOCOLS")
    msg = event.ClientMessage(window=win, client_type=protocols,
                              data=(32, [dpy.intern_atom("WM_DELETE_WINDOW"), X.CurrentTime, 0, 0, 0]))
    win.send_event(msg, event_mask=X.NoEventMask)
    dpy.flush()
    dpy.close()
    return True


def is_shown(display: str, title: str) -> bool:
    found = find_window(display, title)
    if found is not None:
        found[0].close()
    return found is not None
