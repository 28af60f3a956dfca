"""The studies: each experiment its own subpackage (cells, their functions, presets), run through the sweep runner:
:mod:`amtheory.studies.hopfield` (capacity, dense scaling, basins against load, the side-by-side comparison) and
:mod:`amtheory.studies.memorization` (diffusion LMs from memorization to generalization)."""
