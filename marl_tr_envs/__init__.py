"""marl_tr_envs: Gymnasium- and PettingZoo-compatible multi-agent benchmark games."""
