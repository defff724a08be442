"""The HTML report of an evaluation and of the demo: tables, plots, a gallery of queries and TERAN's
word-region alignments drawn on the images (``render.evaluation_page``, ``render.demo_page``)."""
