"""How a model learns: data pipelines, tasks, recipes and the distributed loop.

`python -m training train <recipe>` from the shell; `training.train(recipe_dict)` from Python.
"""
