"""HTML -> interleaved text/image nodes.

- ``obelics-2023`` (reproduces the original build): :mod:`.decode` (bs4 step), :mod:`.simplify_2023`,
  :mod:`.extract_2023`, :mod:`.media_2023`, :mod:`.tags_2023`;
- ``default`` (fixes docs/reference.md §9.2, one parse + one walk): :mod:`.extract_default`, :mod:`.urls`;
- :mod:`.config`: the profile's ``extract`` section; :mod:`.reference_data`: the original's outputs on
  the shared pages, for comparisons.

Use :func:`obelics.extract.extract_html` / :func:`obelics.extract.iter_warc_documents`.
"""
