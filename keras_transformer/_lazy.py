"""Package attributes imported on first use (so that importing a package stays light)."""

import importlib


def lazy_attributes(package, lazy, namespace):
    """`__getattr__` and `__dir__` for `package`, whose names in `lazy` ({name: submodule}) are imported from
    their submodule on first use and then kept in `namespace` (the package's `globals()`)."""

    def __getattr__(name):
        if name in lazy:
            value = getattr(importlib.import_module(f"{package}.{lazy[name]}"), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(namespace) | set(lazy))

    return __getattr__, __dir__
