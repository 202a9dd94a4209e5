"""``obelics view OUT``: a local web viewer of a run folder (finished or in progress).

- :mod:`pipeline.view.runfolder`: what a run folder holds (document files, the funnel, images), read in
  bounded pieces (Parquet row groups), so millions of documents page with flat memory;
- :mod:`pipeline.view.drops`: per stage and reason, a sample of what was dropped, with its metric and threshold;
- :mod:`pipeline.view.compare`: one page as ``obelics-2023`` and ``default`` extract it;
- :mod:`pipeline.view.app`: the Starlette application (JSON API + the static page in ``static/``).
"""
