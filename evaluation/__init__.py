"""Scores of predictions against truth, on NumPy arrays, that training (each epoch) and serving
(the TFLite report on its variants) both compute: a neutral package, as textkit/ and saliency/
are, so neither side imports the other. Where a well-kept library computes a score (COCO mAP:
pycocotools), the module here only adapts arrays to it."""
