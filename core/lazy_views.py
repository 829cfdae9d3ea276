"""Views bound by name, whose module is imported on the first request that needs it.

Every web worker imports the URL configuration, and so does every management command
(Django's system checks read it). A page module that computes with pandas, scipy or
statsmodels would make all of them pay for it. The URL configuration binds such modules'
views with `lazy_view("package.module.view")` instead: a process that never serves them never
loads them. `tests/test_light_processes.py` imports every target, so a wrong name fails
the tests, not a request.
"""
from __future__ import annotations

from django.utils.module_loading import import_string


def lazy_view(dotted_path: str):
    """A view that imports `dotted_path` on its first call and delegates to it.

    Not for views that carry attributes the request machinery reads before the call
    (`csrf_exempt`): those are set on the real view, which the wrapper does not copy.
    """
    module, _, name = dotted_path.rpartition(".")

    def view(request, *args, **kwargs):
        return import_string(dotted_path)(request, *args, **kwargs)

    view.__name__ = view.__qualname__ = name
    view.__module__ = module
    view.lazy_target = dotted_path
    return view
