"""Sphinx configuration of the fastconv documentation.

Build: ``python -m sphinx -W --keep-going -b html docs <output directory>``
(the ``docs`` extra installs what it needs). Pages are Markdown (MyST); the
API reference is reStructuredText over autodoc, with numpydoc reading the
docstrings. Nothing is fetched from the network while building.
"""

import os
import sys

# Document the checkout this file belongs to, installed or not.
sys.path.insert(0, os.path.abspath(".."))

import fastconv  # noqa: E402

project = "fastconv"
author = "The fastconv developers"
copyright = "2026, The fastconv developers (MIT License)"
release = fastconv.__version__
version = release

extensions = [
    "myst_parser",
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

# MyST: anchors for the headings, so pages can link to [a section](page.md#a-section).
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

# autodoc + numpydoc: the signature from the code, the text from the docstring.
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"  # numpydoc's Parameters sections carry the types
autosummary_generate = False  # the API pages list their entries themselves
numpydoc_show_class_members = False  # each class lists its members with :members:
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

html_theme = "pydata_sphinx_theme"
html_title = f"fastconv {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
}
html_static_path = []
html_show_sourcelink = False
