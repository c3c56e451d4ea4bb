"""Image filters of IBSI chapter 2 (convolutional filters) and PyRadiomics' image types, one
module per filter; :mod:`medfeat.filters.boundary` holds what they share (axes, boundary
conditions, slice-wise 2D, rotation invariance)."""
