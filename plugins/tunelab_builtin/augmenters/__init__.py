"""Augmenters: derived rows that keep ``parent_id``.

Rule-based (``eda``, ``synonym``, ``char_noise``) and model-based (``back_translation``,
``paraphrase``) augmenters derive rewritten copies of existing rows (the skeleton is in
``_base``); ``template`` makes synthetic rows from templates.
"""

from __future__ import annotations

from tunelab.api import Component
from tunelab_builtin.augmenters.back_translation import BackTranslation, BackTranslationConfig
from tunelab_builtin.augmenters.char_noise import CharNoise, CharNoiseConfig
from tunelab_builtin.augmenters.eda import Eda, EdaConfig
from tunelab_builtin.augmenters.paraphrase import Paraphrase, ParaphraseConfig
from tunelab_builtin.augmenters.synonym import Synonym, SynonymConfig
from tunelab_builtin.augmenters.template import Template, TemplateConfig

COMPONENTS = [
    Component("eda", Eda, EdaConfig),
    Component("synonym", Synonym, SynonymConfig),
    Component("char_noise", CharNoise, CharNoiseConfig),
    Component("back_translation", BackTranslation, BackTranslationConfig),
    Component("paraphrase", Paraphrase, ParaphraseConfig),
    Component("template", Template, TemplateConfig),
]
