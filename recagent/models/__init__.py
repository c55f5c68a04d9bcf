"""Scoring models: the Scorer protocol, SASRec and popularity."""
