"""Reward-model training on preference pairs (launch/train_rm.py)."""
