"""Problems: what is minimized. The article's data, the four ``torch.nn`` losses, 2-D test
functions, the ``Objective`` protocol they share, the sampling grid and loss maps, and the
analytic stability borders. Imports nothing else of gdscope but ``errors``."""
