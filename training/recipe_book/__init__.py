"""The recipes, one module per family; each calls `training.recipes.add(...)`."""
