"""The modules behind the scripts of experiments/, which are only their command lines, by the script's name."""

import importlib

#: Script name -> the module that holds the study or the results page.
MODULES = {
    "capacity": "amtheory.studies.hopfield.capacity",
    "basins_vs_load": "amtheory.studies.hopfield.basins_vs_load",
    "dense_scaling": "amtheory.studies.hopfield.dense_scaling",
    "summarize_hopfield": "amtheory.reports.hopfield",
    "summarize_memorization": "amtheory.reports.memorization",
}


def load_experiment(name: str):
    """The module behind ``experiments/<name>.py``."""
    return importlib.import_module(MODULES[name])
