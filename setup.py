"""Build the one compiled module, :mod:`obelics.html._walk` (the ``default`` profile's walk over lexbor's tree).

Everything else is in pyproject.toml. The module is optional: without a C compiler the build goes on without
it and the Python walk runs (same output, slower); ``obelics.html.extract_default.COMPILED_MISSING`` says why.
"""

from Cython.Build import cythonize
from setuptools import Extension, setup

setup(
    ext_modules=cythonize(
        [Extension("obelics.html._walk", ["obelics/html/_walk.pyx"], optional=True)],
        compiler_directives={"language_level": 3},
        quiet=True,
    ),
)
