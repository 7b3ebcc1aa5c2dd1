"""Jobs: compute, draw and save one file with the record that ``replay`` needs, one module per
kind of output (plot/animation, article figures, studies, model landscapes)."""
