"""The pipeline profile as one typed object: every section, validated when the profile is loaded.

Each package owns the dataclass of its own section (``WarcConfig`` in ``obelics``, ``TextFiltersConfig``
in ``filters``, ``OutputConfig`` in ``pipeline.writers``, ...), with its types and its defaults. The
defaults are written once, in those dataclasses: the ``default`` profile (``configs/pipeline/default.yaml``)
states no value of its own, and every other profile states only how it differs (``extends: default``).

The schema is assembled here, not in ``obelics.config``, because only ``pipeline/`` may import every
package (the ``obelics`` core must not import ``filters/`` or ``pipeline/``). An explicit list of
sections was chosen over registration at import time: which sections are validated would otherwise
depend on which modules happened to be imported. ``pipeline.run.run()`` and every CLI command that takes
a profile load it through :func:`load_profile` here, so an unknown key or a wrong type anywhere (``--set``
overrides included) is refused before any work starts. Library code may keep using
``obelics.config.load_profile`` and ``Profile.section``, which validate one section at a time.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from filters.dedup.config import DedupConfig
from filters.final import FinalConfig
from filters.image import ImageFilterConfig
from filters.langid import LangIdConfig
from filters.nsfw import NsfwConfig
from filters.optout.config import OptOutConfig
from filters.perplexity import PerplexityConfig
from filters.steps import sections as step_sections
from filters.text_filters import TextFiltersConfig
from obelics import config as core
from obelics.config import ConfigError, Profile
from obelics.html.config import ExtractConfig
from obelics.warc import WarcConfig
from pipeline import stages  # noqa: F401  (registers the ops get_op looks up)
from pipeline.images.config import ImagesConfig
from pipeline.ops import get_op
from pipeline.run_config import RunConfig
from pipeline.writers.config import OutputConfig


@dataclass
class PipelineProfile:
    """Every section of a pipeline profile, in pipeline order; a section left out takes its defaults."""

    warc: WarcConfig = field(default_factory=WarcConfig)
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    text_filters: TextFiltersConfig = field(default_factory=TextFiltersConfig)
    langid: LangIdConfig = field(default_factory=LangIdConfig)
    perplexity: PerplexityConfig = field(default_factory=PerplexityConfig)
    image_filters: ImageFilterConfig = field(default_factory=ImageFilterConfig)
    nsfw: NsfwConfig = field(default_factory=NsfwConfig)
    optout: OptOutConfig = field(default_factory=OptOutConfig)
    final: FinalConfig = field(default_factory=FinalConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    images: ImagesConfig = field(default_factory=ImagesConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    run: RunConfig = field(default_factory=RunConfig)


def validate(profile: Profile) -> PipelineProfile:
    """Every section of ``profile`` as typed objects; :class:`ConfigError` on any unknown key or wrong type
    (``run.stages`` included: each must name a registered op)."""
    extra = _step_sections(profile)
    typed = core.from_dict(PipelineProfile, {k: v for k, v in profile.data.items() if k not in extra}, profile.name)
    for name in typed.run.stages:
        try:
            get_op(name)
        except ValueError as e:
            raise ConfigError(f"{profile.name}.run.stages: {e}") from None
    return typed


def _step_sections(profile: Profile) -> dict:
    """The sections of ``profile`` that belong to filter steps without a field above (a filter added in
    ``filters/steps.py`` or registered there), each validated into its step's dataclass, defaults filled."""
    known = {f.name for f in dataclasses.fields(PipelineProfile)}
    return {name: dataclasses.asdict(core.from_dict(cls, profile.data[name], f"{profile.name}:{name}"))
            for name, cls in step_sections().items() if name not in known and name in profile.data}


def load_profile(name_or_path: str | Path | Profile = "default", overrides: list[str] | None = None) -> Profile:
    """Load a profile (name, YAML path or loaded profile), apply ``key.path=value`` overrides and validate
    every section: a typo or a wrong type fails here, before any stage runs. The returned profile's
    ``data`` is complete (every default filled in)."""
    profile = core.load_profile(name_or_path, overrides)
    # the loaded profile holds every value, defaults included: Profile.get sees what the run uses
    return Profile(profile.name, {**dataclasses.asdict(validate(profile)), **_step_sections(profile)}, profile.path)


def resolved(profile: Profile) -> dict:
    """The complete profile, every default filled in (what a run saves as ``profile.yaml``)."""
    return {"name": profile.name, **dataclasses.asdict(validate(profile)), **_step_sections(profile)}


__all__ = ["ConfigError", "PipelineProfile", "load_profile", "resolved", "validate"]
