"""Shared test set-up: one torch thread (small ops are much slower with two on 2 cores)."""

import torch

torch.set_num_threads(1)
