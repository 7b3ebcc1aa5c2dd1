"""Renderers: matplotlib axes-level functions that draw landscapes, paths, overlays, 3-D
surfaces, study charts, the Fig. 7 diagram and animations, and return what they drew."""
