"""Executing committed blocks: the asset module, contracts, state tree, receipts."""
