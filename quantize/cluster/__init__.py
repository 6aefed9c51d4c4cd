"""Clustering estimators over weighted points: K-means, Gaussian mixtures, the 1-D optimum."""
