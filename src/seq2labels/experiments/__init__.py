"""Experiments that train and tabulate many models: compare (baselines vs SGM), ablation (SGM
variants) and crossdata (a model scored on another data set's labels).

May import pipeline, baselines and everything below them; only apps import it.
"""
