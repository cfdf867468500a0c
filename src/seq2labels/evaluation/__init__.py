"""Scoring, with no model inside: metrics (scikit-learn based multi-label metrics, label position
deviation) and protocols (train/test and k-fold evaluation of any estimator).

May import data, utils and errors only.
"""
