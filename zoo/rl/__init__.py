"""Reinforcement-learning networks: observations in; policies, values and Q-functions out."""

import importlib
import pkgutil

# every module of the family registers its models with @register
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
