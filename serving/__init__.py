"""How a model is used: SavedModel export in TF Serving's layout, TFLite variants, TF Serving
configs, an embedded TF-Serving-compatible server and clients. Works from exported directories."""
