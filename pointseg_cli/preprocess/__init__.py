"""Image preprocessing shared by objectness, training and inference.

- :mod:`~pointseg_cli.preprocess.normalize`: per-image intensity scaling to [0, 1] (the
  :class:`~pointseg_cli.preprocess.normalize.Normalization` saved with every model);
- :mod:`~pointseg_cli.preprocess.stain`: stain normalisation of RGB H&E images (Vahadane, Macenko);
- :mod:`~pointseg_cli.preprocess.diffusion`: Perona–Malik anisotropic diffusion;
- :mod:`~pointseg_cli.preprocess.equalize`: histogram equalisation.

The submodules are imported one by one (nothing here) so that inference, which needs only the
normalisation and stain code, does not pay for numba or scikit-image.
"""
