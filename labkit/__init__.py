"""labkit — the compression lab's from-scratch toolkit.

Import the submodules you need (``from labkit import data, models, train``); this package keeps its
own import light so that ``import labkit`` never trains, downloads or compiles anything.
"""

__version__ = "0.1.0"
