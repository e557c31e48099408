"""Compatibility modules: other libraries' APIs, running on bitlens.

:mod:`bitlens.compat.bitmapist` is bitmapist 3.x's API, sync: change ``import bitmapist``
to ``from bitlens.compat import bitmapist`` and the code keeps working, then move to the
async API at its own pace.
"""
