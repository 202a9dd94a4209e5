"""Build the one compiled module, :mod:`obelics.html._walk` (the ``default`` profile's walk over lexbor's tree),
and list the packages: the code's, plus ``configs/`` (profiles, run YAMLs, trainer and DeepSpeed configs),
which stays at the top of the checkout and ships in the wheel as ``obelics.configs`` (a declarative
``packages.find`` cannot add a folder from outside the package; its files come in through MANIFEST.in).
Everything else is in pyproject.toml.

The module is optional: without a C compiler the build goes on without it and the Python walk runs (same
output, slower); ``obelics.html.extract_default.COMPILED_MISSING`` says why.
"""

import os

from Cython.Build import cythonize
from setuptools import Extension, find_packages, setup

CONFIG_PACKAGES = ["obelics.configs"] + [
    "obelics.configs." + d for d in sorted(os.listdir("configs")) if os.path.isdir(os.path.join("configs", d))
]

setup(
    packages=find_packages(include=["obelics*", "filters*", "pipeline*", "model*", "train*"]) + CONFIG_PACKAGES,
    ext_modules=cythonize(
        [Extension("obelics.html._walk", ["obelics/html/_walk.pyx"], optional=True)],
        compiler_directives={"language_level": 3},
        quiet=True,
    ),
)
